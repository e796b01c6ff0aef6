"""Package sysroots: Debian archives read as apt would (signed InRelease, Packages indices), dependency
resolution per architecture, the lock file, fetching `.deb` files by digest and unpacking them into a tree.

Layered beside `minibuild.image`: the rules use both; neither knows the other.
"""
