"""A results folder made fit to keep as CI artifacts: every secret masked in place.

Run before the folder is kept as a CI artifact or logged anywhere (``ds-pipelines mask-secrets``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import shutil
from pathlib import Path

from ds_pipelines.masking import (
    Masker,
    UnmaskableFileError,
    mask_json_file,
    mask_kept_file,
    mask_notebook_file,
)
from ds_pipelines.results.folder import RESULTS_FILE, load_results


@dataclass(frozen=True)
class MaskedFolders:
    """What masking did: the occurrences masked, and the files left out (deleted), each with why."""

    occurrences: int = 0
    left_out: dict[Path, str] = field(default_factory=dict)


def mask_results_folder(directory: Path, env: Mapping[str, str] | None = None, *,
                        kept_files: Iterable[Path] = ()) -> MaskedFolders:
    """Mask, in place, everything a results folder holds and every file under the ``kept_files`` folders
    (the files a CI job keeps beside it, ``<name>.files/``): executed notebooks, results.json and metrics files
    as JSON, every other file (artifacts, metrics.txt) as a kept file (``masking.mask_kept_file``).
    A binary file that holds a secret or cannot be checked is deleted, so that it is not kept.
    The identifiers ds-pipelines wrote (``RunResults.own_identifiers``) stay readable.
    A kept-files folder that does not exist holds nothing (a failed run keeps none)."""
    directory = Path(directory)
    results = load_results(directory)
    masker = Masker.from_env(env).trusting(results.own_identifiers())
    notebooks = {nb.executed_notebook.resolve() for nb in results.notebooks if nb.executed_notebook is not None}
    as_json = {(directory / RESULTS_FILE).resolve(),
               *(nb.metrics_file.resolve() for nb in results.notebooks if nb.metrics_file is not None)}
    total, left_out = 0, {}
    files = [*_files_under(directory), *(file for folder in kept_files for file in _files_under(Path(folder)))]
    for file in files:
        resolved = file.resolve()
        try:
            if resolved in notebooks:
                total += mask_notebook_file(file, file, masker.env_values, masker.known_safe)
            elif resolved in as_json:
                total += mask_json_file(file, masker.env_values, masker.known_safe)
            else:
                total += mask_kept_file(file, masker.env_values, masker.known_safe)
        except UnmaskableFileError as exc:
            file.unlink()
            left_out[file] = str(exc)
    return MaskedFolders(total, left_out)


def keep_masked_copy(directory: Path, target: Path, env: Mapping[str, str] | None = None) -> MaskedFolders:
    """A masked copy of the results folder ``directory`` at ``target`` (a folder a CI job keeps as its
    artifacts): copied and masked beside ``directory``, then moved, so that ``target`` never holds an unmasked
    file, even if the job is killed while masking."""
    directory, target = Path(directory), Path(target)
    staging = directory.with_name(f"{directory.name}.masking")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(directory, staging, symlinks=True)
    masked = mask_results_folder(staging, env)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(staging, target)
    return MaskedFolders(masked.occurrences, {target / path.relative_to(staging): why for path, why in masked.left_out.items()})


def _files_under(folder: Path) -> list[Path]:
    """The files under ``folder``, sorted; links are not followed (CI keeps the link, not what it points to)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
