"""Reading a whole manifest: its file (:mod:`orchestrator.config.yamlfile`), then each part checked and
turned into the types of :mod:`orchestrator.config.manifest`. What each target API and store takes is
asked of its spec, among the ``plugins`` the caller passes (the registries live above this layer:
``orchestrator.run.wiring.PLUGINS`` holds them all).

Every problem is recorded with its place and all are raised at once, one line each.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..models import Credentials
from ..paths import not_a_file
from . import discovery, env, extras, pgurl, yamlfile
from .manifest import Manifest, Settings, SourceConfig, TargetConfig, Visibility
from .plugins import Plugins
from .reader import MILVUS_NAME, Reader, Reported, excerpt, kind_of
from .source_section import read_credentials, read_source

_TOP_REQUIRED = ("version", "target", "sources")


def load(path: str | Path, environ: Mapping[str, str] | None = None, *, plugins: Plugins) -> Manifest:
    """Read, substitute and validate a manifest; raise :class:`ManifestError` naming every problem."""
    file = Path(path)
    doc = yamlfile.read(path)
    return parse(doc, file=str(path), base_dir=file.resolve().parent, stem=file.stem,
                 environ=os.environ if environ is None else environ, plugins=plugins)


def parse(doc: Any, *, file: str, base_dir: Path, stem: str, environ: Mapping[str, str],
          plugins: Plugins) -> Manifest:
    """Validate a parsed manifest; every problem found is raised at once, one line each."""
    r = Reader(file, environ)
    if isinstance(doc, dict):
        r.unset_variables(doc)
    top = r.mapping(doc, "", optional=(*_TOP_REQUIRED, "credentials", "settings", "ledger", "schema_files"))
    for key in _TOP_REQUIRED:
        if key not in top:
            r.note(key, "required key is missing")
    if "version" in top and top["version"] != 1:
        r.note("version", f"this orchestrator reads manifest version 1, got {excerpt(top['version'])}")
    target: TargetConfig | None = None
    with r.collect():
        if "target" in top:
            target = _target(r, top["target"], base_dir, plugins)
    credentials: Credentials | None = None
    with r.collect():
        credentials = read_credentials(r, top.get("credentials"), "credentials", target)
    sources: list[SourceConfig] = []
    sources_node = top.get("sources")
    if "sources" in top and (not isinstance(sources_node, list) or not sources_node):
        r.note("sources", "expected a non-empty list of sources")
    elif isinstance(sources_node, list):
        for i, node in enumerate(sources_node):
            with r.collect():
                sources.append(read_source(r, node, i, target, base_dir, plugins.stores))
    for source in sources:
        if target is not None and target.capabilities.credentials and source.credentials is None \
                and credentials is None and "credentials" not in top:
            r.note(f"sources[{source.index}].credentials",
                   "no credentials for the import service: set top-level credentials or this one")
    for a, b in itertools.combinations(sources, 2):
        # the fields an object's ledger URL is made of (an Azure URL names its account, none its endpoint)
        same_bucket = (a.scheme, a.account, a.bucket) == (b.scheme, b.account, b.bucket)
        if same_bucket and a.endpoint_url != b.endpoint_url \
                and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)):
            r.note(f"sources[{b.index}].url", f"bucket {b.bucket!r} on another endpoint than "
                   f"sources[{a.index}]'s: the ledger names an object by its bucket and key, so one of these "
                   "would be taken for the other's; give each endpoint its own manifest and ledger")
        if a.queue is not None and a.queue == b.queue:
            r.note(f"sources[{b.index}].queue", f"sources[{a.index}] reads this queue too: a message is "
                   "taken by whichever receives it first, and dropped when not its; give each its own queue")
    settings = _settings(r, top.get("settings"))
    if target is not None and settings.objects_per_job > target.capabilities.files_per_job:
        r.note("settings.objects_per_job", f"{settings.objects_per_job}: a {target.type} import job takes "
                                           f"at most {target.capabilities.files_per_job} file(s)")
    if target is not None and settings.visibility is Visibility.PER_RUN and not target.two_phase:
        r.note("settings.visibility", "per_run needs two-phase import, " + (
            "which target.two_phase: false turns off" if target.capabilities.two_phase else
            f"which a {target.type} target cannot do (milvus only)") + "; use per_job")
    schema_files: dict[str, Path] = {}
    with r.collect():
        schema_files = _schema_files(r, top.get("schema_files"), base_dir)
    ledger, ledger_url = Path(f"{stem}.ledger.sqlite"), None
    with r.collect():
        if isinstance(top.get("ledger"), str) and pgurl.is_postgres(top["ledger"]):
            ledger_url = _postgres_ledger(r, top["ledger"], stem)
        elif top.get("ledger") is not None:
            ledger = Path(r.string(top["ledger"], "ledger"))
    ledger = ledger if ledger.is_absolute() else base_dir / ledger
    problem = ledger_file_problem(ledger) if ledger_url is None else None
    if problem is not None:
        r.note("ledger", problem)
    _note_missing_extras(r, target, sources, ledger_url, plugins)
    r.done()
    assert target is not None
    return Manifest(
        path=base_dir / Path(file).name,
        target=target,
        credentials=credentials,
        sources=tuple(sources),
        settings=settings,
        ledger_path=ledger,
        schema_files=schema_files,
        ledger_url=ledger_url,
    )


def _target(r: Reader, node: Any, base_dir: Path, plugins: Plugins) -> TargetConfig:
    types = tuple(spec.type for spec in plugins.targets)
    if not isinstance(node, dict):
        raise r.fail("target", f"expected a mapping, got {kind_of(node)}")
    if "type" not in node:
        raise r.fail("target.type", f"required key is missing (one of {', '.join(types)})")
    return plugins.target(r.choice(node["type"], "target.type", types)).parse(r, node, base_dir)


def _settings(r: Reader, node: Any) -> Settings:
    if node is None:
        return Settings()
    s = {}
    with r.collect():
        s = r.mapping(node, "settings", optional=tuple(f.name for f in dataclasses.fields(Settings)))
    values = {}
    for spec in dataclasses.fields(Settings):
        if spec.name in s:
            with r.collect():
                values[spec.name] = r.setting(spec, s[spec.name], f"settings.{spec.name}")
    return Settings(**values)


def _note_missing_extras(r: Reader, target: TargetConfig | None, sources: list[SourceConfig],
                         ledger_url: pgurl.PostgresLedger | None, plugins: Plugins) -> None:
    """What the manifest uses from an optional extra that is not installed, each with the pip line."""
    needs: list[tuple[str, str, str, tuple[str, ...] | None]] = []
    if target is not None and (spec := plugins.target(target.type)).extra is not None:
        needs.append(("target.type", spec.extra, f"the {target.type} target", spec.extra_modules))
    stores = {store.scheme: store for store in plugins.stores}
    needs += [(f"sources[{s.index}].url", extra, stores[s.scheme].what, None)
              for s in sources if (extra := stores[s.scheme].extra) is not None]
    needs += [(f"sources[{s.index}].queue", form.extra, f"the queue of a {s.scheme}:// source", form.modules)
              for s in sources if s.queue is not None
              and (form := discovery.QUEUE_FORMS[s.scheme]).extra is not None]
    if ledger_url is not None:
        needs.append(("ledger", "postgres", "a PostgreSQL ledger", None))
    for path, extra, what, only in needs:
        why = extras.missing(extra, needed_by=what, modules=only)
        if why is not None:
            r.note(path, why)


def ledger_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a SQLite ledger (a folder, a FIFO, a device, a symlink loop), or None."""
    problem = not_a_file(path)
    return None if problem is None else f"{path}: {problem}, not a ledger file: name a file (the first run " \
        "makes it)"


def _postgres_ledger(r: Reader, node: str, stem: str) -> pgurl.PostgresLedger:
    """``ledger: postgresql://...``: each part substituted on its own; a password only as ${VAR}."""
    if env.UNSUPPORTED_REF.search(node):
        raise Reported  # noted with its place by unset_variables; the URL cannot be parsed around it
    try:
        return pgurl.parse(node, substitute=lambda part: r.string(part, "ledger") if part else part,
                           default_schema=pgurl.default_schema(stem))
    except ValueError as exc:
        raise r.fail("ledger", str(exc)) from None


def _schema_files(r: Reader, node: Any, base_dir: Path) -> dict[str, Path]:
    """``collection: path`` pairs: saved describe outputs, for when the data plane is out of reach."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise r.fail("schema_files", f"expected a mapping of collection to JSON file, got {kind_of(node)}")
    files = {}
    for name, value in node.items():
        if not isinstance(name, str) or not MILVUS_NAME.match(name):
            raise r.fail(f"schema_files.{excerpt(name, quote=False)}", "expected a collection name")
        path = base_dir / r.string(value, f"schema_files.{name}")
        if not path.is_file():
            raise r.fail(f"schema_files.{name}", f"no such file: {path}")
        files[name] = path
    return files
