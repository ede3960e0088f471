"""The Typer application object; command modules attach themselves to it."""

import typer

app = typer.Typer(
    name="vsearch",
    help="Search folders of video by text. Index a folder, then ask for what you want to see.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
