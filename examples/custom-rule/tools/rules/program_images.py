"""`program_images`: a macro. One table lists programs; each becomes an `image` and an `image_test`.

    [[program_images]]
    name = "tools"
    programs = ["/bin/bash", "/usr/bin/env"]

makes `:tools_bash` and `:tools_env` (images holding the program, its entrypoint) and `:tools_bash_test` and
`:tools_env_test` (each runs its program with `args`, `--version` by default, and expects exit code 0). A macro
runs when its package is loaded: it declares targets of existing rules, it registers no action.
"""

from __future__ import annotations

from minibuild.rule import Attrs, MacroContext, macro


class ProgramImagesAttrs(Attrs):
    programs: list[str]
    """Absolute paths of programs in the sysroot: one image and one image test each, named after the program."""
    args: list[str] = ["--version"]
    """The arguments each test runs its program with; it must exit with code 0."""
    env: dict[str, str] = {}
    """Environment variables of every image."""


def _program_images(ctx: MacroContext[ProgramImagesAttrs]) -> None:
    seen: dict[str, str] = {}
    for program in ctx.attrs.programs:
        base = program.rstrip("/").rsplit("/", 1)[-1]
        if base in seen:
            raise ctx.fail(f"`{seen[base]}` and `{program}` would both make `:{ctx.name}_{base}`", "programs",
                           hint="list one program per name, or split the table in two")
        seen[base] = program
        image = ctx.target("image", base, binaries=[program], env=ctx.attrs.env)
        ctx.target("image_test", f"{base}_test", image=image,
                   commands=[{"args": ctx.attrs.args, "exit_code": 0}], files=[{"path": program}])


program_images = macro(
    implementation=_program_images,
    attrs=ProgramImagesAttrs,
    doc="An image of each program and an image test that runs it: `<name>_<program>` and `<name>_<program>_test`.",
)
