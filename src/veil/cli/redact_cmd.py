"""`veil redact`: analyse a video once, choose what to mask, export with a signed manifest.

    veil redact analyse VIDEO [-o ANALYSIS.json] [--config C]
    veil redact tracks ANALYSIS.json
    veil redact preview VIDEO --analysis A --selection S --frame N -o frame.png
    veil redact export VIDEO --analysis A --selection S -o OUT.mp4 [--overwrite]
    veil redact verify OUT.mp4 --manifest OUT.manifest.json [--public-key KEY.pem]

Exit codes: 0 done (verify: the export matches its manifest); 1 a media, key or runtime error
(verify: it does not match); 2 bad usage, a bad selection (unknown track ids) or configuration.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from veil.cli.errors import fail
from veil.core.errors import UsageError, VeilError

from .progress import FrameProgress

if TYPE_CHECKING:
    from veil.redact.analysis import Analysis
    from veil.redact.selection import ResolvedSelection

redact_app = typer.Typer(
    name="redact",
    help=(
        "Redact a video before it leaves the site: analyse it once (persons, faces, other "
        "moving objects, as tracks), choose in a selection file what to mask (or which "
        "persons of interest to keep), preview, and export an MP4 with a signed manifest."
        "\n\nExample: veil redact analyse cam1.mp4 && veil redact export cam1.mp4 "
        "--analysis cam1.mp4.veil-analysis.json --selection sel.yaml -o case17.mp4"
    ),
    no_args_is_help=True,
)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``redact`` command group to ``app``."""
    app.add_typer(redact_app, name="redact")


def _say(text: str) -> None:
    typer.echo(text)


_ANALYSIS = typer.Option(
    None,
    "--analysis",
    "-a",
    help="The analysis file (default: VIDEO.veil-analysis.json beside the video).",
)
_SELECTION = typer.Option(
    ..., "--selection", "-s", help="Selection file (YAML or JSON).", show_default=False
)


def _analysis_path(video: str, given: Path | None) -> Path:
    from veil.redact.analysis import default_analysis_path

    return given if given is not None else default_analysis_path(video)


@redact_app.command("analyse")
def analyse_command(
    video: str = typer.Argument(
        ...,
        help="The video (a file, or an image sequence such as img1/%06d.jpg).",
        show_default=False,
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to save the analysis (default: beside the video)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Veil configuration: person detector size and tiles, hold time, model folder.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Analyse again even when a matching analysis exists."
    ),
    no_faces: bool = typer.Option(False, "--no-faces", help="Skip the face detector."),
    no_motion: bool = typer.Option(False, "--no-motion", help="Skip motion (other objects)."),
    fps: float | None = typer.Option(
        None, "--fps", help="Frame rate of an image sequence (default 25)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Detect and track every person, face and other moving object, once.

    The analysis is saved beside the video with the video's SHA-256; exporting again with
    another selection reuses it and never detects again. An existing analysis that matches
    the video and settings is kept (use --force to redo it).

    Example: veil redact analyse cam1.mp4
    """
    from dataclasses import replace

    from veil.config.loader import load_config
    from veil.redact.analysis import Analysis, AnalysisSettings, analyse_video

    try:
        settings = (
            AnalysisSettings.from_config(load_config(config)) if config else AnalysisSettings()
        )
        settings = replace(settings, faces=not no_faces, motion=not no_motion)
        if fps is not None and fps <= 0:
            raise UsageError(f"--fps must be positive, got {fps}")
        path = _analysis_path(video, output)
        if path.exists() and not force:
            try:
                saved = Analysis.load(path)
                saved.check_video(video)
                if saved.settings == settings:
                    _say(f"{path} is up to date ({len(saved.tracks)} tracks); use --force to redo")
                    return
            except VeilError:
                pass
        from veil.media.source import open_source

        rate = None if fps is None else Fraction(fps).limit_denominator(1001)
        with open_source(video, fps=rate) as probe:
            total = probe.frame_count
        with FrameProgress(
            total, enabled=not quiet, console=_stderr, description="analysing"
        ) as bar:
            analysis = analyse_video(video, settings, progress=bar, fps=rate)
        analysis.save(path)
    except VeilError as error:
        fail(error)
    kinds: dict[str, int] = {}
    for track in analysis.tracks:
        kinds[track.kind.value] = kinds.get(track.kind.value, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no tracks"
    fps_done = analysis.video.frame_count / analysis.seconds if analysis.seconds else 0.0
    _say(f"analysed {analysis.video.frame_count} frames at {fps_done:.1f} fps: {counts} -> {path}")
    if analysis.unsafe_frames:
        _say(
            f"warning: {len(analysis.unsafe_frames)} frame(s) could not be analysed; "
            "exports mask them whole"
        )


@redact_app.command("tracks")
def tracks_command(
    analysis_file: Path = typer.Argument(..., help="The analysis file.", show_default=False),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind: person, face, motion."),
    thumbnails: Path | None = typer.Option(
        None,
        "--thumbnails",
        help="Also write each listed track's thumbnail into this folder (track-ID-KIND.jpg).",
    ),
) -> None:
    """List the tracks of an analysis: id, kind, frames, time span, how they were seen.

    Example: veil redact tracks cam1.mp4.veil-analysis.json --kind person
    """
    from veil.redact.analysis import Analysis

    try:
        analysis = Analysis.load(analysis_file)
    except VeilError as error:
        fail(error)
    fps = analysis.video.fps_value
    if thumbnails is not None:
        thumbnails.mkdir(parents=True, exist_ok=True)
    _say(f"{'id':>5}  {'kind':<7} {'frames':>13}  {'seconds':>15}  {'seen':>5}  predicted only")
    for t in analysis.tracks:
        if kind is not None and t.kind.value != kind:
            continue
        _say(
            f"{t.track_id:>5}  {t.kind.value:<7} {t.first_frame:>6}-{t.last_frame:<6}  "
            f"{t.first_frame / fps:>7.2f}-{(t.last_frame + 1) / fps:<7.2f}  "
            f"{t.detected_frames:>5}  "
            + ("" if t.detected_frames else f"yes, from track {t.parent or '?'}")
        )
        thumb = analysis.thumbnails.get(t.track_id)
        if thumbnails is not None and thumb:
            name = f"track-{t.track_id}-{t.kind.value}.jpg"
            (thumbnails / name).write_bytes(base64.b64decode(thumb))


def _load(
    video: str, analysis_file: Path | None, selection_file: Path
) -> tuple[Analysis, ResolvedSelection, Path]:
    from veil.redact.analysis import Analysis
    from veil.redact.selection import load_selection, resolve

    path = _analysis_path(video, analysis_file)
    analysis = Analysis.load(path)
    selection = load_selection(selection_file)
    return analysis, resolve(selection, analysis), path


@redact_app.command("preview")
def preview_command(
    video: str = typer.Argument(..., help="The analysed video.", show_default=False),
    analysis_file: Path | None = _ANALYSIS,
    selection_file: Path = _SELECTION,
    frame: int = typer.Option(
        ..., "--frame", "-f", help="0-based frame index.", show_default=False
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Image (.png or .jpg).", show_default=False
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing image."),
    labels: bool = typer.Option(
        False,
        "--labels",
        help="Outline every track with its id (red: masked, green: kept, grey: not masked), "
        "to choose tracks; not for sharing.",
    ),
) -> None:
    """Write one frame redacted as the selection says, to check it before exporting.

    Example: veil redact preview cam1.mp4 -s sel.yaml --frame 250 -o f250.png
    """
    from veil.redact.export import preview_frame

    try:
        analysis, resolved, _ = _load(video, analysis_file, selection_file)
        preview_frame(video, analysis, resolved, frame, output, overwrite=overwrite, labels=labels)
    except VeilError as error:
        fail(error)
    _say(f"frame {frame} -> {output}")


@redact_app.command("export")
def export_command(
    video: str = typer.Argument(..., help="The analysed video.", show_default=False),
    analysis_file: Path | None = _ANALYSIS,
    selection_file: Path = _SELECTION,
    output: Path = typer.Option(
        ..., "--output", "-o", help="The redacted video (.mp4).", show_default=False
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing export."),
    operator: str | None = typer.Option(
        None, "--operator", help="Who exports (default: the OS user name)."
    ),
    signing_key: Path | None = typer.Option(
        None,
        "--signing-key",
        help="Ed25519 private key (PEM) that signs the manifest (default: the user's key in "
        "~/.config/veil, made on first use).",
    ),
    audit_db: Path | None = typer.Option(
        None,
        "--audit-db",
        help="The gateway's database (veil.db or its data folder): the "
        "export is recorded in its audit log.",
    ),
    audit_key_file: Path | None = typer.Option(
        None, "--audit-key-file", help="Key file of a keyed (HMAC) audit log."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Export the video with the redaction burned in, plus a signed manifest.

    Writes OUT.mp4, OUT.manifest.json (signed, Ed25519) and OUT.manifest.html; nothing
    appears until all are complete. The video must be the one analysed (SHA-256).

    Example: veil redact export cam1.mp4 -s sel.yaml -o case17.mp4 --operator "J. Doe"
    """
    from veil.redact.export import export_redaction

    try:
        analysis, resolved, apath = _load(video, analysis_file, selection_file)
        recorder = _audit_recorder(audit_db, audit_key_file, output)
        first, last = resolved.first_frame, resolved.last_frame
        with FrameProgress(
            last - first + 1, enabled=not quiet, console=_stderr, description="exporting"
        ) as bar:
            result = export_redaction(
                video,
                analysis,
                resolved,
                output,
                overwrite=overwrite,
                operator=operator,
                signing_key=signing_key,
                audit=recorder,
                progress=bar,
                analysis_path=apath,
                selection_path=selection_file,
            )
    except VeilError as error:
        fail(error)
    if result.key_created:
        _say(
            f"created a signing key at {result.key_path} (keep it; its public key is in "
            "every manifest)"
        )
    _say(f"exported {result.frames} frames at {result.fps:.1f} fps -> {result.output}")
    _say(f"manifest: {result.manifest_json} and {result.manifest_html}")
    _say(f"signed by {result.fingerprint}")
    if result.audit_seq is not None:
        _say(f"recorded in the audit log as entry {result.audit_seq}")
    if result.fully_masked_frames:
        _say(f"warning: {result.fully_masked_frames} frame(s) were masked whole (fail closed)")


def _audit_recorder(
    db_path: Path | None, key_file: Path | None, output: Path
) -> Callable[[str, dict[str, Any]], int] | None:
    if db_path is None:
        if key_file is not None:
            raise UsageError("--audit-key-file needs --audit-db", hint="give the gateway database")
        return None
    from veil.vault.audit import AuditAction, AuditLog, audit_key_from
    from veil.vault.db import Database
    from veil.vault.keys import MasterKey

    path = Database.resolve_path(db_path)
    if not path.is_file():
        raise UsageError(
            f"--audit-db {db_path}: no gateway database there",
            hint="give the gateway's veil.db or its data folder",
        )
    key = audit_key_from(MasterKey.from_key_file(key_file)) if key_file is not None else None

    def record(actor: str, details: dict[str, Any]) -> int:
        db = Database(path)
        try:
            entry = AuditLog(db, hmac_key=key).append(
                actor, AuditAction.EXPORT, f"redaction:{output.name}", details
            )
        finally:
            db.close()
        return entry.seq

    return record


GATE_FAILED_EXIT = 3


@redact_app.command("eval")
def eval_command(
    video: str = typer.Argument(..., help="The analysed video.", show_default=False),
    gt: Path = typer.Option(
        ..., "--gt", help="MOTChallenge ground truth (gt/gt.txt) of the video.", show_default=False
    ),
    analysis_file: Path | None = _ANALYSIS,
    selection_file: Path = _SELECTION,
    kept_person: int | None = typer.Option(
        None,
        "--kept-person",
        help="Ground-truth id of the person the selection keeps (mask-all-except): measured "
        "for being shown, and left out of recall and leaks.",
    ),
    min_recall: float | None = typer.Option(
        None, "--min-recall", min=0.0, max=1.0, help=f"Exit {GATE_FAILED_EXIT} below this recall."
    ),
    max_leaked_frames: int | None = typer.Option(
        None, "--max-leaked-frames", min=0, help="Exit 3 when more frames leak a person."
    ),
    min_kept_shown: float | None = typer.Option(
        None,
        "--min-kept-shown",
        min=0.0,
        max=1.0,
        help="Exit 3 when the kept person is shown in a smaller share of their frames.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Measure a redaction against ground truth without exporting (veil.eval's metrics).

    Example: veil redact eval "TUD/img1/%06d.jpg" --gt TUD/gt/gt.txt -s all.yaml
    --min-recall 0.999 --max-leaked-frames 0
    """
    from veil.eval.groundtruth import load_ground_truth
    from veil.eval.metrics import Thresholds
    from veil.redact.export import evaluate_redaction

    try:
        analysis, resolved, _ = _load(video, analysis_file, selection_file)
        truth = load_ground_truth(gt)
        quality = evaluate_redaction(analysis, resolved, truth, kept_person=kept_person)
    except VeilError as error:
        fail(error)
    console = Console(highlight=False)
    console.print(quality.report.summary())
    failures = list(
        Thresholds(min_recall=min_recall, max_leaked_frames=max_leaked_frames).check(quality.report)
    )
    if kept_person is not None:
        shown = quality.kept_shown
        _say(
            f"kept person {kept_person}: shown in "
            + ("no frame" if shown is None else f"{100 * shown:.1f}% of {quality.kept_frames}")
            + " frames"
        )
        if min_kept_shown is not None and (shown is None or shown < min_kept_shown):
            failures.append(f"kept person shown {shown} is below {min_kept_shown}")
    if json_out is not None:
        data = quality.report.to_dict()
        data["kept_person"] = kept_person
        data["kept_shown"] = quality.kept_shown
        json_out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if failures:
        for failure in failures:
            _stderr.print(f"[bold red]failed:[/] {escape(failure)}", markup=True)
        raise typer.Exit(GATE_FAILED_EXIT)


@redact_app.command("verify")
def verify_command(
    output: Path = typer.Argument(..., help="The exported video.", show_default=False),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Its manifest (default: OUT.manifest.json beside it)."
    ),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="The signer's public key (PEM) that the manifest must carry."
    ),
) -> None:
    """Check an export against its signed manifest: exit 0 if it matches, 1 if not.

    Recomputes the video's SHA-256 and checks the Ed25519 signature of the manifest.

    Example: veil redact verify case17.mp4 --public-key site-key.pub.pem
    """
    from veil.redact.manifest import manifest_paths, verify_export, verify_public_key_arg

    try:
        key = verify_public_key_arg(public_key)
    except VeilError as error:
        fail(error)
    path = manifest if manifest is not None else manifest_paths(output)[0]
    result = verify_export(output, path, key)
    if result.ok:
        _say(result.message)
        return
    _stderr.print(f"[bold red]FAILED:[/] {escape(result.message)}", markup=True)
    raise typer.Exit(code=1)
