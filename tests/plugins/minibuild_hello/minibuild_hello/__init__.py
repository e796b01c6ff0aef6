"""minibuild-hello: an example minibuild plugin (the `hello` rule, the `hellos` macro)."""
