"""A small program for the python image: the standard library, its C extensions and their libraries."""

import ctypes
import hashlib
import json
import sqlite3
import ssl
import zlib

db = sqlite3.connect(":memory:")
db.execute("create table t (k text, v integer)")
db.executemany("insert into t values (?, ?)", [("a", 1), ("b", 2), ("c", 3)])
total = db.execute("select sum(v) from t").fetchone()[0]
digest = hashlib.sha256(zlib.compress(json.dumps({"total": total}).encode())).hexdigest()[:12]
libc = ctypes.CDLL(None)
context = ssl.create_default_context()
print(json.dumps({"total": total, "digest": digest, "pid_positive": libc.getpid() > 0,
                  "ca_certs": context.cert_store_stats()["x509_ca"] > 0, "openssl": ssl.OPENSSL_VERSION}))
