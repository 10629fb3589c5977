"""A ``sources:`` entry and the ``credentials`` an import call sends: what every source takes (its
collection, pattern, filters, credentials), and, through its store's spec (the one whose URL it is),
what only that store takes.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..models import Credentials, Secret
from ..redact import shown_url
from . import discovery, urls
from .manifest import SourceConfig, TargetConfig
from .patterns import KeyPattern, PatternError
from .plugins import Location, StoreSpec
from .reader import MILVUS_NAME, Reader, Reported, configured_url, excerpt, http_url

_DISCOVERY_KEYS = ("discovery", "queue", "inventory", "backfill_every")

_COMMON_KEYS = ("partition", "pattern", "include", "exclude", "credentials", "object_url_style",
                *_DISCOVERY_KEYS)


def read_source(r: Reader, node: Any, index: int, target: TargetConfig | None, base_dir: Path,
                stores: Sequence[StoreSpec[Any]]) -> SourceConfig:
    """One source; ``target`` None: the target is wrong, check the source for itself."""
    p = f"sources[{index}]"
    only = store_keys(stores)
    s = r.mapping(node, p, required=("url", "collection"), optional=(*_COMMON_KEYS, *only))
    url = configured_url(r, s["url"], f"{p}.url") or r.string(s["url"], f"{p}.url")
    if "://" in url and ("?" in url or "#" in url):  # a SAS token pasted with the URL: never shown
        cut = min(i for i in (url.find("?"), url.find("#")) if i >= 0)
        raise r.fail(f"{p}.url", f"{excerpt(url[:cut])} is followed by a query or fragment (not shown: it "
                                 "may hold a token); a store's URL names a bucket and prefix only: give a "
                                 "SAS token as sas_token: ${VAR}, other keys under credentials")
    meant = _mistyped_url(url, stores)
    if meant is not None:
        shown = shown_url(url)  # a password substituted into its user-info is never printed
        raise r.fail(f"{p}.url", f"{excerpt(shown)} is neither a store's URL nor a folder: did you mean "
                                 f"{excerpt(shown_url(meant))}? (a folder of that name: write "
                                 f"./{excerpt(shown, quote=False)})")
    store, where = _locate(url, base_dir, stores)
    if where is not None and where.root is not None and target is not None \
            and not target.capabilities.local_sources:
        raise r.fail(f"{p}.url", f"the {target.type} target imports from the bucket the server reads "
                                 "(e.g. its MinIO): use s3://bucket/prefix, not a local folder")
    if store is None or where is None:
        forms = [form for spec in stores for form in spec.url_forms]
        raise r.fail(f"{p}.url", f"expected {', '.join(forms[:-1])} or {forms[-1]}, got "
                                 f"{excerpt(shown_url(url))}")
    pattern = key_pattern(r, s["pattern"], f"{p}.pattern") if s.get("pattern") is not None else None
    groups = set(pattern.groupindex) if pattern else set()
    collection = r.string(s["collection"], f"{p}.collection")
    check_template(r, collection, f"{p}.collection", groups)
    partition = r.optional_string(s.get("partition"), f"{p}.partition")
    if partition is not None:
        if target is not None and not target.capabilities.partitions:
            raise r.fail(f"{p}.partition", f"the {target.type} import API cannot target a partition")
        check_template(r, partition, f"{p}.partition", groups)
    include = r.strings(s["include"], f"{p}.include") if "include" in s else ("**/*.parquet",)
    exclude = r.strings(s["exclude"], f"{p}.exclude") if "exclude" in s else ()
    for key, schemes in only.items():
        if key in s and store.scheme not in schemes:
            kinds = " and ".join(f"{k}://" for k in schemes)
            raise r.fail(f"{p}.{key}", f"only for {kinds} sources, not {store.scheme}://")
    endpoint_url = configured_url(r, s.get("endpoint_url"), f"{p}.endpoint_url")
    if endpoint_url is not None and not http_url(endpoint_url):
        raise r.fail(f"{p}.endpoint_url", f"expected http(s)://host[:port], got "
                                          f"{excerpt(shown_url(endpoint_url))}")
    region = r.optional_string(s.get("region"), f"{p}.region")
    style = r.choice(s.get("object_url_style", "native"), f"{p}.object_url_style", urls.STYLES)
    why = store.problem(style=style, bucket=where.bucket, region=region, endpoint_url=endpoint_url)
    if why is not None:
        raise r.fail(f"{p}.object_url_style", why)
    credentials = read_credentials(r, s.get("credentials"), f"{p}.credentials", target)
    own = store.read_keys(r, s, p, url, base_dir)
    found = read_discovery(r, s, p, store.scheme)
    return SourceConfig(
        index=index,
        url=url,
        scheme=store.scheme,
        bucket=where.bucket,
        prefix=where.prefix,
        collection=collection,
        partition=partition,
        pattern=pattern,
        include=include,
        exclude=exclude,
        endpoint_url=endpoint_url,
        region=region,
        credentials=credentials,
        root=where.root,
        object_url_style=style,
        **found,
        **own,
    )


def read_discovery(r: Reader, s: dict[str, Any], p: str, scheme: str) -> dict[str, Any]:
    """``discovery`` and the keys that go with it (the README's Discovery section): ``events`` needs a
    ``queue`` of the store's form, ``inventory`` an ``inventory`` location; ``backfill_every`` is for
    either; a local folder is listed."""
    mode = r.choice(s.get("discovery", discovery.LIST), f"{p}.discovery", discovery.MODES)
    if mode != discovery.LIST and scheme == "file":
        raise r.fail(f"{p}.discovery", f"{mode}: a local folder is listed (discovery: list)")
    either = (discovery.EVENTS, discovery.INVENTORY)
    for key, needs in (("queue", either), ("inventory", (discovery.INVENTORY,)), ("backfill_every", either)):
        if s.get(key) is not None and mode not in needs:
            raise r.fail(f"{p}.{key}", f"only with discovery: {' or '.join(needs)} (this source's is {mode})")
    queue = r.optional_string(s.get("queue"), f"{p}.queue")
    if mode == discovery.EVENTS and queue is None:
        raise r.fail(f"{p}.queue", "discovery: events reads the store's notifications from a queue: "
                                   "set queue (see the README's Discovery section)")
    if queue is not None:
        _check_form(r, queue, f"{p}.queue", discovery.QUEUE_FORMS.get(scheme), f"{scheme}://", "queue")
    inventory = r.optional_string(s.get("inventory"), f"{p}.inventory")
    if mode == discovery.INVENTORY:
        if scheme not in discovery.INVENTORY_FORMS:
            raise r.fail(f"{p}.discovery", f"inventory: only s3:// sources have one (S3 Inventory), not "
                                           f"{scheme}://: use list or events")
        if inventory is None:
            raise r.fail(f"{p}.inventory", "discovery: inventory reads S3 Inventory's manifest.json: set "
                                           "inventory to where it is delivered (s3://bucket/prefix/)")
        _check_form(r, inventory, f"{p}.inventory", discovery.INVENTORY_FORMS[scheme], f"{scheme}://",
                    "inventory")
    every = _duration(r, s.get("backfill_every"), f"{p}.backfill_every")
    return {"discovery": mode, "queue": queue, "inventory": inventory, "backfill_every_s": every}


def _check_form(r: Reader, value: str, path: str, form: discovery.QueueForm | None, store: str,
                what: str) -> None:
    if "?" in value or "#" in value:  # a SAS token pasted with the URL: never shown
        raise r.fail(path, "is followed by a query or fragment (not shown: it may hold a token); give the "
                           f"{what}'s URL alone")
    if form is None:
        raise r.fail(path, f"{store} sources have no {what} discovery: use discovery: list")
    if not form.form.match(value):
        raise r.fail(path, f"expected {form.shown} for a {store} source, got {excerpt(shown_url(value))}")


def _duration(r: Reader, node: Any, path: str) -> float:
    """A duration: seconds, or with units (``90m``, ``24h``, ``7d``); 0 is never."""
    if node is None:
        return discovery.DEFAULT_BACKFILL_S
    found = float(node) if isinstance(node, int | float) and not isinstance(node, bool) else \
        discovery.seconds(node) if isinstance(node, str) else None
    if found is None or not 0 <= found <= discovery.MAX_BACKFILL_S:
        raise r.fail(path, f"expected a duration from 0 (never) to 366d, as 3600, 90m, 24h or 7d; got "
                           f"{excerpt(node)}")
    return found


def store_keys(stores: Sequence[StoreSpec[Any]]) -> dict[str, tuple[str, ...]]:
    """The source keys only some stores take, each with the schemes of the stores that take it."""
    only: dict[str, tuple[str, ...]] = {}
    for spec in stores:
        for key in spec.keys:
            only[key] = (*only.get(key, ()), spec.scheme)
    return only


def _locate(url: str, base_dir: Path,
            stores: Sequence[StoreSpec[Any]]) -> tuple[StoreSpec[Any] | None, Location | None]:
    """The store whose URL ``url`` is, and what it names there."""
    for spec in stores:
        where = spec.locate(url, base_dir)
        if where is not None:
            return spec, where
    return None, None


def _mistyped_url(url: str, stores: Sequence[StoreSpec[Any]]) -> str | None:
    """The URL meant when ``url`` is a store's URL with its scheme mistyped (``s3:/lake/x``,
    ``s3:lake/x``, ``S3://lake/x``, ``s3a://lake/x``, ``gs:///bucket/x``), else None. Without this such a
    URL is a relative folder (``s3:`` and all), which fails only when a run lists it."""
    scheme, colon, rest = url.partition(":")
    meant = next((spec.scheme for spec in stores if colon and scheme.lower() in spec.spellings), None)
    if meant is None or url.startswith("file://"):
        return None
    guess = f"file:///{rest.lstrip('/')}" if meant == "file" else f"{meant}://{rest.lstrip('/')}"
    return None if guess == url else guess


def read_credentials(r: Reader, node: Any, path: str, target: TargetConfig | None) -> Credentials | None:
    """The keys an import call sends for reading the objects; ``target`` None: the target is wrong,
    check the block for itself."""
    if node is None:
        return None
    if target is not None and not target.capabilities.credentials:
        raise r.fail(path, f"the {target.type} target reads the objects itself (no keys are sent with an "
                           "import call): remove this block")
    c = r.mapping(node, path, required=("access_key", "secret_key"), optional=("token",), secret=True)
    if "token" in c and target is not None and not target.capabilities.sts_token:
        raise r.fail(f"{path}.token", f"the {target.type} import API takes no session token "
                                      "(zilliz-v2 does)")
    keys: dict[str, Secret] = {}
    for key in ("access_key", "secret_key", "token"):
        if key in c:
            with r.collect():
                keys[key] = Secret(r.string(c[key], f"{path}.{key}", secret=True))
    if len(keys) < len([k for k in ("access_key", "secret_key", "token") if k in c]):
        raise Reported
    return Credentials(access_key=keys["access_key"], secret_key=keys["secret_key"], token=keys.get("token"))


def check_template(r: Reader, template: str, path: str, groups: set[str]) -> None:
    """A collection or partition: a Milvus name, or a template over ``pattern``'s named groups."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise r.fail(path, f"not a valid template: {exc}") from exc
    for name in fields:
        if name not in groups:
            have = ", ".join(sorted(groups)) or "none: set pattern with (?P<name>...) groups"
            raise r.fail(path, f"template field {{{name}}} is not a named group of pattern ({have})")
    if not fields and not MILVUS_NAME.match(template):
        raise r.fail(path, f"{excerpt(template)} is not a valid Milvus name (letters, digits, _; not "
                           "starting with a digit)")


def key_pattern(r: Reader, node: Any, path: str) -> KeyPattern:
    raw = r.string(node, path)
    try:
        return KeyPattern(raw)
    except PatternError as exc:
        raise r.fail(path, "not a valid regular expression for RE2 (no lookarounds or backreferences: see "
                           f"Patterns in docs/reference/sources.md): {exc}") from exc


