"""`vsearch-synth` / `vsearch synth`: write synthetic captioned clips (see vsearch.synth.scenes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import console, handle_errors


@app.command()
@handle_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (gets videos/ and captions.csv).", show_default=False)],
    count: Annotated[int, typer.Option(help="Number of clips.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same clips).")] = 0,
    width: int = 128,
    height: int = 96,
    fps: int = 15,
    seconds: Annotated[float, typer.Option(help="Length of each scene.")] = 3.0,
    scenes_per_clip: Annotated[int, typer.Option(help="Scenes per file (>1 writes segments.csv too).")] = 1,
    direction_set: Annotated[
        bool,
        typer.Option(
            "--direction-set",
            help="Write the held-out direction set instead (`vsearch eval direction`): --count clips of every scene "
            "held out of synth:motion training, 64x64, 8 frames.",
        ),
    ] = False,
) -> None:
    """Write synthetic clips of coloured shapes moving (captions like "a red circle moving left").

    Example: [bold]vsearch synth /tmp/synth --count 200[/]
    """
    from vsearch.synth.scenes import RenderSettings, generate, write_direction_set

    if direction_set:
        csv_path = write_direction_set(out, groups=count, seed=seed)
        console.print(f"wrote the direction set ({count} clips of each held-out scene) to {csv_path}")
        return
    clips = generate(out, count, seed=seed, settings=RenderSettings(width, height, fps, seconds), scenes_per_clip=scenes_per_clip)
    console.print(f"wrote {len(clips)} clips to {out}/videos and {out}/captions.csv")


def run() -> None:
    """Entry point of the `vsearch-synth` console script (the same command, standalone)."""
    standalone = typer.Typer(add_completion=False)
    standalone.command()(synth)
    standalone()
