"""minibuild's built-in rules, one a file, in the style of Bazel's Starlark rules."""
