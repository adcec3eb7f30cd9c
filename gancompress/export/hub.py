"""Push an exported generator to the Hugging Face Hub, with a generated model card.

:func:`export_and_push` is the library call behind ``gancompress export --push-to-hub``:
it checks the repository name, the token and the attached report *before* any work, exports,
then uploads ``model.safetensors`` and a ``README.md`` model card in one commit through
``huggingface_hub`` (``create_repo``, ``create_branch`` for ``--revision``, ``create_commit``).

The card records the source checkpoint and its revision, the compression method, granularity
and sparsity, the evaluate table when a report is given, and how to load the file with
``gancompress.load`` and with safetensors + numpy alone. A model pushed this way loads back
with ``gancompress inspect hf://OWNER/REPO`` (or ``gancompress.load``) and no flags.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..version import __version__
from ..errors import GanCompressError, InputError

MODEL_FILE = "model.safetensors"
# Where gancompress lives (also pyproject's project.urls.Repository); it is not on the package index.
REPOSITORY_URL = "https://github.com/gancompress/gancompress"
CARD_FILE = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
_SNAPSHOT_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class PushConfig:
    """Where to push: ``repo_id`` is ``OWNER/REPO``; ``revision`` a branch (created when missing)."""

    repo_id: str
    private: bool = False
    revision: str | None = None
    report: Path | None = None  # an `evaluate -o` JSON report for the card
    commit_message: str | None = None


@dataclass
class PushResult:
    repo_id: str
    revision: str
    url: str
    commit: str | None
    hf_uri: str
    files: list[str] = field(default_factory=list)
    private: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- checks (before any work)


def hub_token() -> str:
    """The token from ``HF_TOKEN`` or the Hub's login (``hf auth login``); :class:`InputError` when none."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        try:
            from huggingface_hub import get_token

            token = (get_token() or "").strip()
        except Exception:  # noqa: BLE001 - a broken token file is the same as none here
            token = ""
    if not token:
        raise InputError("--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN "
                         "or run `hf auth login` (nothing was exported)")
    return token


def check_push(config: PushConfig) -> tuple[str, dict[str, Any] | None]:
    """Validate everything a push needs; returns the token and the parsed report (if any)."""
    if not _REPO_ID.match(config.repo_id) or ".." in config.repo_id or config.repo_id.endswith((".git", ".")):
        raise InputError(f"--push-to-hub {config.repo_id!r}: give the repository as OWNER/REPO "
                         "(letters, digits, '-', '_', '.')")
    if config.revision is not None and (not _REVISION.match(config.revision) or ".." in config.revision
                                        or config.revision.endswith(("/", ".lock"))):
        raise InputError(f"--revision {config.revision!r} is not a valid branch name")
    report = None
    if config.report is not None:
        from ..formats.report import load_report

        report = load_report(config.report)
    return hub_token(), report


# ----------------------------------------------------------------------------- what the card says


def _json_field(metadata: dict[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key]) if key in metadata else None
    except (TypeError, json.JSONDecodeError):
        return None


def _snapshot_commit(path: Path) -> str | None:
    parts = path.resolve().parts if path.exists() else path.parts
    for i, part in enumerate(parts[:-1]):
        if part == "snapshots" and _SNAPSHOT_SHA.match(parts[i + 1]):
            return parts[i + 1]
    return None


def source_details(source: str) -> dict[str, Any]:
    """What the card reports about the input: Hub revision and commit, pruning and fine-tuning records."""
    from ..sources import parse_hf, resolve

    details: dict[str, Any] = {"input": source}
    local = resolve(source)
    if source.startswith("hf://"):
        repo, rev, _ = parse_hf(source)
        details.update(input_repo=repo, input_revision=rev or "main", input_commit=_snapshot_commit(local))
    if local.is_file() and local.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(local), framework="pt") as f:
                metadata = dict(f.metadata() or {})
        except Exception:  # noqa: BLE001 - export already read it; the card just says less
            metadata = {}
        provenance = _json_field(metadata, "provenance") or {}
        details["pruning"] = _json_field(metadata, "pruning") or provenance.get("pruning")
        details["finetune"] = _json_field(metadata, "finetune")
        details["provenance"] = provenance
    return details


def _origin(details: dict[str, Any]) -> str:
    pruning = details.get("pruning") or {}
    return str(pruning.get("source") or details["input"])


def _origin_revision(origin: str, details: dict[str, Any]) -> str:
    if origin.startswith("hf://"):
        from ..sources import parse_hf

        try:
            _, rev, _ = parse_hf(origin)
        except InputError:
            rev = None
        text = f"`{rev or 'main'}`"
        if origin == details["input"] and details.get("input_commit"):
            text += f" (commit `{details['input_commit']}`)"
        return text
    if origin.startswith("builtin:"):
        return f"bundled with gancompress {__version__}"
    return "local file (no revision)"


def _pct(x: Any) -> str:
    return f"{100 * float(x):.1f}%" if isinstance(x, (int, float)) else "-"


def _granularity(pruning: dict[str, Any]) -> str:
    g = pruning.get("granularity") or "-"
    if g == "block" and pruning.get("block"):
        return f"block {'x'.join(map(str, pruning['block']))}"
    if g == "nm" and pruning.get("nm"):
        return f"N:M {':'.join(map(str, pruning['nm']))}"
    return str(g)


def _method(details: dict[str, Any]) -> str:
    pruning, finetune = details.get("pruning") or {}, details.get("finetune") or {}
    tuned = ""
    if finetune:
        loss = f", {finetune['loss']} loss" if finetune.get("loss") else ""
        tuned = (f"`{finetune.get('method', '?')}` fine-tuning against the discriminator "
                 f"({finetune.get('step', finetune.get('steps', '?'))} steps{loss})")
    if not pruning:
        return tuned or "none (the dense generator, re-encoded)"
    if (pruning.get("schedule") or {}).get("kind") == "agp":
        return f"gradual magnitude pruning (AGP) during {tuned or 'fine-tuning'}"
    return f"magnitude pruning, then {tuned}" if tuned else "one-shot magnitude pruning (no fine-tuning)"


def _provenance_rows(details: dict[str, Any], export: dict[str, Any], filename: str) -> list[tuple[str, str]]:
    origin = _origin(details)
    pruning = details.get("pruning") or {}
    achieved = pruning.get("achieved") or {}
    rows = [("source checkpoint", f"`{origin}`"), ("source revision", _origin_revision(origin, details))]
    if origin != details["input"]:
        rev = ""
        if details.get("input_commit"):
            rev = f" at `{details.get('input_revision')}` (commit `{details['input_commit']}`)"
        rows.append(("exported from", f"`{details['input']}`{rev}"))
    rows.append(("method", _method(details)))
    if pruning:
        target = pruning.get("sparsity")
        rows += [("granularity", _granularity(pruning)),
                 ("scope", str(pruning.get("scope") or "-")),
                 ("sparsity", f"{_pct(achieved.get('pruned'))} of the pruned layers (target {_pct(target)}), "
                              f"{_pct(achieved.get('all'))} of all conv/linear weights")]
    rows += [("architecture", f"`{export.get('architecture', '?')}`"),
             ("file", f"`{filename}`: {export.get('format')} layout, {export.get('dtype')}, "
                      f"{export.get('file_bytes', 0):,} bytes = {export.get('ratio', 1.0):.3f}x the dense float32 file"),
             ("parameters", f"{export.get('parameters', 0):,} ({export.get('nonzeros', 0):,} non-zero)"),
             ("written by", f"gancompress {__version__}")]
    if export.get("shrink"):
        s = export["shrink"]
        rows.append(("widths", f"{s.get('widths_before')} -> {s.get('widths_after')} (pruned filters removed)"))
    return rows


def _decoder_snippet() -> str:
    text = (Path(__file__).with_name("_numpy_decoder.py")).read_text(encoding="utf-8")
    return text.split("# --- snippet ---\n", 1)[1]


def model_card(push: PushConfig, export: dict[str, Any], details: dict[str, Any],
               report: dict[str, Any] | None, filename: str = MODEL_FILE) -> str:
    """The README.md pushed with the model."""
    from ..formats.report import gates_table, metrics_table

    repo, rev = push.repo_id, push.revision
    uri = f"hf://{repo}" + (f"@{rev}" if rev and rev != "main" else "")
    rev_arg = f', revision="{rev}"' if rev and rev != "main" else ""
    tags = ["gancompress", "gan", "pruning", "safetensors"]
    if export.get("format") == "sparse":
        tags.append("sparse")
    lines = ["---", "library_name: gancompress", "tags:", *[f"- {t}" for t in tags], "---", "",
             f"# {repo}", "",
             f"A compressed GAN generator (`{export.get('architecture', '?')}`) written by "
             f"[gancompress]({REPOSITORY_URL}) {__version__}.", "",
             "## Provenance", "", "| | |", "|---|---|",
             *[f"| {k} | {v.replace('|', chr(92) + '|')} |" for k, v in _provenance_rows(details, export, filename)], ""]
    lines += ["## Evaluation", ""]
    if report is not None:
        lines += [metrics_table(report), ""]
        gates = gates_table(report)
        if gates:
            lines += [gates, ""]
        settings = report.get("settings") or {}
        if settings.get("extractor"):
            lines += [f"Measured with `gancompress evaluate` ({settings.get('num_samples')} samples, "
                      f"extractor `{settings.get('extractor')}`, real data `{settings.get('real')}`, seed {settings.get('seed')}).", ""]
    else:
        lines += ["No evaluate report was attached (`gancompress evaluate ... -o report.json`, then "
                  "`gancompress export ... --push-to-hub ... --report report.json`).", ""]
    lines += ["## Load it", "", f"With gancompress (`pip install \"gancompress @ git+{REPOSITORY_URL}\"`): an `nn.Module` "
              "in eval mode.", "",
              "```python", "import gancompress", "", f'generator = gancompress.load("{uri}")', "```", "",
              f"or from the shell: `gancompress inspect {uri}`.", "",
              "With safetensors + numpy alone:", ""]
    download = ["from huggingface_hub import hf_hub_download", "",
                f'path = hf_hub_download("{repo}", "{filename}"{rev_arg})']
    if export.get("format") == "sparse":
        lines += ["The file uses the `gancompress-sparse` layout (pruned weights are not stored). This decoder "
                  "needs only numpy; bfloat16 tensors come back as their uint16 bit patterns.", "",
                  "```python", *download, "```", "", "```python", _decoder_snippet().rstrip("\n"), "",
                  "", "state = load_state(path)  # {name: numpy array}, the generator's state dict", "```", ""]
    else:
        lines += ["The file is a plain state dict (`gancompress-dense` layout).", "",
                  "```python", *download, "from safetensors.numpy import load_file", "",
                  "state = load_file(path)  # {name: numpy array}, the generator's state dict", "```", ""]
    lines += ["`__metadata__[\"g_arch\"]` (JSON) names the architecture and its arguments.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the upload


def _hub_error(repo_id: str, exc: Exception) -> GanCompressError:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if status in (401, 403):
        return InputError(f"the Hub refused the token for {repo_id} ({status}): check that HF_TOKEN "
                          "(or `hf auth login`) has write access to it")
    return GanCompressError(f"push to {repo_id} failed: {first}")


def push_file(path: Path, push: PushConfig, card: str, token: str) -> PushResult:
    """Upload ``path`` as ``model.safetensors`` and the card as ``README.md`` in one commit."""
    import sys

    from huggingface_hub import CommitOperationAdd, HfApi

    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    api = HfApi(token=token)
    revision = push.revision or "main"
    try:
        url = api.create_repo(push.repo_id, private=push.private, exist_ok=True)
        if revision != "main":
            api.create_branch(push.repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(
            push.repo_id,
            operations=[CommitOperationAdd(MODEL_FILE, str(path)), CommitOperationAdd(CARD_FILE, card.encode("utf-8"))],
            commit_message=push.commit_message or f"Upload compressed generator (gancompress {__version__})",
            revision=revision,
        )
    except GanCompressError:
        raise
    except Exception as exc:  # noqa: BLE001 - HTTP, network and validation errors all end here
        raise _hub_error(push.repo_id, exc) from None
    uri = f"hf://{push.repo_id}" + ("" if revision == "main" else f"@{revision}")
    return PushResult(push.repo_id, revision, str(url), getattr(info, "oid", None), uri, [MODEL_FILE, CARD_FILE],
                      push.private)


def export_and_push(config, push: PushConfig | None = None) -> dict[str, Any]:
    """Export ``config`` (an :class:`~gancompress.export.ExportConfig`), then push it when ``push`` is given.

    Returns the export result as a dict, with ``output`` (the file written) and, after a push,
    ``hub`` (:class:`PushResult`). The token, repository name and report are checked first.
    """
    from . import export

    token, report = check_push(push) if push is not None else (None, None)
    if push is not None and config.format == "onnx":
        raise InputError("--push-to-hub uploads safetensors exports; choose --format sparse, dense or shrunk")
    result = export(config).to_dict()
    result["output"] = result["path"]
    if push is not None:
        card = model_card(push, result, source_details(config.source), report)
        result["hub"] = push_file(Path(result["path"]), push, card, token).to_dict()
    return result
