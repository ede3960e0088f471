"""The Typer application object; command modules attach themselves to it."""

import typer

app = typer.Typer(
    name="vsearch",
    help="Search folders of video by text. Index a folder, then ask for what you want to see.\n\n"
    'Example: [bold]vsearch index ~/Videos && vsearch search "a dog catches a frisbee"[/]',
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("vsearch")
        except PackageNotFoundError:  # running from a checkout that was never installed
            v = "unknown (not installed)"
        typer.echo(f"vsearch {v}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version, is_eager=True),
) -> None:
    """Search folders of video by text. Index a folder, then ask for what you want to see.

    Example: [bold]vsearch index ~/Videos && vsearch search "a dog catches a frisbee"[/]
    """


def _readable_help() -> None:
    """Help that reads like a Unix tool's: ``FOLDERS...`` not ``{folders}...``, ``PATH`` not
    ``<path>``, and no type at all on an on/off flag (Typer 0.29 prints ``<bool>`` there).

    Presentation only, applied to Typer's own parameter classes once at import.
    """
    from typer import core

    def type_label(param, ctx) -> str | None:
        if isinstance(param, core.TyperOption) and (param.is_flag or param.is_bool_flag):
            return None
        if getattr(param, "metavar", None):
            return param.metavar
        raw = core.TyperParameter.display_type(param, ctx) if hasattr(core, "TyperParameter") else param.display_type(ctx)
        label = raw.strip("<>")
        if label.startswith("list[") and label.endswith("]"):
            label = label[5:-1]
        label = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER"}.get(label, label.upper())
        return label + ("..." if param.nargs != 1 else "")

    def usage_name(param) -> str:
        name = (param.metavar or param.name).upper()
        name = name if param.required else f"[{name}]"
        return name + ("..." if param.nargs != 1 else "")

    core.TyperOption.display_type_rich = type_label
    core.TyperArgument.display_type_rich = type_label
    core.TyperArgument._usage_display_name = usage_name


_readable_help()
