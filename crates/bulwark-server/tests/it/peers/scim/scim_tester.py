"""Runs the third-party SCIM conformance tester `scim2-tester` (PyPI) against one SCIM base URL,
every check enabled, and prints what it found in a form a Rust test can read.

usage: scim_tester.py --url BASE [--token TOKEN | --token-file FILE | env SCIM_TESTER_TOKEN]
                      [--expect-skip FILE] [--timeout SECONDS] [--seed N] [--min-checks N]

BASE is the SCIM base URL, for Bulwark `http://127.0.0.1:PORT/scim/v2/orgs/{org}`. The token is
sent as `Authorization: Bearer TOKEN` and never printed (any text that would carry it is
redacted). A command line is visible to other users of the machine (/proc/PID/cmdline): a test
should prefer SCIM_TESTER_TOKEN or --token-file; --token is accepted too.

Output, on stdout, one JSON object per line:
  one per check result:
    {"status": "SUCCESS" | "ERROR" | "CRITICAL" | "DEVIATION" | "SKIPPED" | "EXPECTED_SKIP" | ...,
     "title": "check_add_attribute", "description": "<first line of the check's docstring>",
     "reason": "...", "resource_type": "User" | null, "urn": "<attribute path>" | null,
     "tags": [...]}
  one per --expect-skip entry that matched no failing or skipped result (the entry is stale):
    {"status": "STALE_EXPECT_SKIP", "title": ..., "reason": ...}
  and last:
    {"summary": {"ran": n, "passed": n, "failed": n, "skipped": n, "seed": n, "tester": "0.5.2"}}
On a fatal problem (server unreachable, token refused, bad arguments) a line {"fatal": "..."} is
printed instead of the results, with the same message on stderr, and the exit code is 2.

Exit code: 0 when no check failed; 1 when one did; 2 when the checks could not run.

What counts:
  passed   SUCCESS, COMPLIANT, ACCEPTABLE (scim2-tester's passing statuses).
  failed   ERROR, CRITICAL, DEVIATION, a SKIPPED that no --expect-skip entry explains (a check
           that does not apply must be listed with its reason), a stale --expect-skip entry,
           and fewer results than --min-checks.
  skipped  results an --expect-skip entry explains (printed as EXPECTED_SKIP with the entry's
           reason, the tester's own status and reason kept in tester_status/tester_reason).

--expect-skip FILE is a JSON list (or {"expect_skip": [...]}) of entries:
  {"title": "check_add_attribute",          # required: the check's function name
   "resource_type": "User",                 # optional: only results for this resource type
   "urn": "x509Certificates",               # optional: only the result for this attribute path
   "reason_contains": "501",                # optional: only results whose tester reason has it
   "reason": "why this check does not apply to Bulwark"}   # required, non-empty
An entry applies to every result it matches that did not pass; an entry that matches none is
stale and fails the run, so the list cannot outlive the gaps it explains.

Every check scim2-tester 0.5.2 has runs: check_server() with no tag filter (tags: discovery,
service-provider-config, resource-types, schemas, crud:create, crud:read, crud:read:attributes,
crud:update, crud:delete, patch:add, patch:remove, patch:replace, misc), plus
core_schemas_validation, which scim2-tester defines and exports but check_server() never calls
(printed with "extra": true).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PASSING = {"SUCCESS", "COMPLIANT", "ACCEPTABLE"}
FAILING = {"ERROR", "CRITICAL", "DEVIATION"}


class Fatal(Exception):
    """The checks cannot run at all."""


class Redactor:
    """Removes the token from any text before it is printed. A token shorter than 8 characters
    (only ever a test's) is left alone: replacing it would mangle the text around it."""

    def __init__(self, token: str):
        self.token = token if len(token) >= 8 else ""

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str) and self.token:
            return value.replace(self.token, "[redacted]")
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


def first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return None


def read_token(args: argparse.Namespace) -> str:
    sources = [s for s in (args.token, args.token_file) if s]
    if len(sources) > 1:
        raise Fatal("give the token once: --token or --token-file")
    if args.token:
        token = args.token
    elif args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise Fatal(f"cannot read the token file {args.token_file}: {e.strerror}") from None
    else:
        token = os.environ.get("SCIM_TESTER_TOKEN", "").strip()
    if not token:
        raise Fatal("no token: pass --token, --token-file or set SCIM_TESTER_TOKEN")
    if any(c in token for c in "\r\n"):
        raise Fatal("the token must be one line")
    return token


def read_expect_skip(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise Fatal(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise Fatal(f"{path} is not JSON: {e}") from None
    if isinstance(data, dict):
        data = data.get("expect_skip")
    if not isinstance(data, list):
        raise Fatal(f"{path}: expected a JSON list of entries (or {{\"expect_skip\": [...]}})")
    allowed = {"title", "resource_type", "urn", "reason_contains", "reason"}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise Fatal(f"{path}: entry {i} is not an object")
        unknown = set(entry) - allowed
        if unknown:
            raise Fatal(f"{path}: entry {i} has unknown keys {sorted(unknown)}")
        if not isinstance(entry.get("title"), str) or not entry["title"]:
            raise Fatal(f"{path}: entry {i} needs a title (the check's name)")
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            raise Fatal(f"{path}: entry {i} ({entry['title']}) needs a non-empty reason")
    return data


def entry_matches(entry: dict[str, Any], row: dict[str, Any]) -> bool:
    if entry["title"] != row["title"]:
        return False
    if "resource_type" in entry and entry["resource_type"] != row.get("resource_type"):
        return False
    if "urn" in entry and entry["urn"] != row.get("urn"):
        return False
    if "reason_contains" in entry and entry["reason_contains"] not in (row.get("reason") or ""):
        return False
    return True


def preflight(http: Any, httpx2: Any, base: str) -> None:
    """GET /ServiceProviderConfig and /ResourceTypes once, to turn an unreachable server or a
    refused token into one clear message rather than a hundred failed checks. Both, because a
    server may serve /ServiceProviderConfig without authentication (scim2-server does)."""
    for path in ("/ServiceProviderConfig", "/ResourceTypes"):
        try:
            response = http.get(path, headers={"Accept": "application/scim+json"})
        except httpx2.TimeoutException as e:
            raise Fatal(
                f"the SCIM server at {base} did not answer GET {path} in time ({type(e).__name__})"
            ) from None
        except httpx2.RequestError as e:
            raise Fatal(f"cannot reach the SCIM server at {base}: {type(e).__name__}: {e}") from None
        if response.status_code in (401, 403):
            raise Fatal(f"the SCIM server at {base} refused the token on GET {path} ({response.status_code})")


def run(args: argparse.Namespace) -> int:
    token = read_token(args)
    redact = Redactor(token)
    try:
        expect_skip = read_expect_skip(args.expect_skip)

        try:
            import httpx2
            from scim2_client.engines.httpx2 import SyncSCIMClient
            from scim2_tester import Status, check_server
            from scim2_tester.checkers.schemas import core_schemas_validation
            from scim2_tester.utils import CheckConfig, CheckContext
        except ImportError as e:
            raise Fatal(
                f"scim2-tester is not installed in {sys.executable} ({e}); "
                "pip install scim2-tester==0.5.2 scim2-cli==0.6.0"
            ) from None

        try:
            tester_version = version("scim2-tester")
        except PackageNotFoundError:
            tester_version = None

        seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**31
        random.seed(seed)

        base = args.url.rstrip("/")
        http = httpx2.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(args.timeout),
            follow_redirects=False,
            trust_env=False,
        )
        with http:
            preflight(http, httpx2, base)
            client = SyncSCIMClient(http)
            results = check_server(client)
            # Defined and exported by scim2-tester but never called by check_server().
            context = CheckContext(client, CheckConfig())
            extra = core_schemas_validation(context)

        rows: list[dict[str, Any]] = []
        for result, is_extra in [(r, False) for r in results] + [(r, True) for r in extra]:
            data = result.data if isinstance(result.data, dict) else {}
            urn = data.get("urn") if isinstance(data.get("urn"), str) else None
            row = {
                "status": result.status.name if isinstance(result.status, Status) else str(result.status),
                "title": result.title,
                "description": first_line(result.description),
                "reason": result.reason,
                "resource_type": result.resource_type,
                "urn": urn,
                "tags": sorted(result.tags or []),
            }
            if is_extra:
                row["extra"] = True
            rows.append(row)

        used = [False] * len(expect_skip)
        passed = failed = skipped = 0
        for row in rows:
            if row["status"] in PASSING:
                passed += 1
                continue
            matched = next((i for i, e in enumerate(expect_skip) if entry_matches(e, row)), None)
            if matched is not None:
                used[matched] = True
                row["tester_status"], row["tester_reason"] = row["status"], row["reason"]
                row["status"], row["reason"] = "EXPECTED_SKIP", expect_skip[matched]["reason"]
                skipped += 1
            else:
                if row["status"] == "SKIPPED":
                    row["reason"] = (
                        f"{row['reason']} (a check that does not apply must be listed in "
                        "--expect-skip with its reason)"
                    )
                failed += 1

        for row in rows:
            print(json.dumps(redact(row)), flush=True)

        for entry, was_used in zip(expect_skip, used):
            if not was_used:
                failed += 1
                stale = {
                    "status": "STALE_EXPECT_SKIP",
                    "title": entry["title"],
                    "description": "an --expect-skip entry matched no failing or skipped result",
                    "reason": entry["reason"],
                    "resource_type": entry.get("resource_type"),
                    "urn": entry.get("urn"),
                }
                print(json.dumps(redact(stale)), flush=True)

        if len(rows) < args.min_checks:
            failed += 1
            print(
                json.dumps(
                    {
                        "status": "ERROR",
                        "title": "min_checks",
                        "description": "the tester produced fewer results than --min-checks",
                        "reason": f"{len(rows)} results, at least {args.min_checks} expected",
                    }
                ),
                flush=True,
            )

        summary = {
            "ran": len(rows),
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "seed": seed,
            "tester": tester_version,
        }
        print(json.dumps({"summary": summary}), flush=True)
        return 0 if failed == 0 else 1
    except Fatal as e:
        message = redact(str(e))
        print(json.dumps({"fatal": message}), flush=True)
        print(f"scim_tester.py: {message}", file=sys.stderr)
        return 2
    except Exception as e:  # an unexpected failure of the tester itself: never leak the token
        message = redact(f"{type(e).__name__}: {e}")
        print(json.dumps({"fatal": message}), flush=True)
        print(f"scim_tester.py: {message}", file=sys.stderr)
        return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the SCIM base URL")
    parser.add_argument("--token", help="the bearer token (prefer SCIM_TESTER_TOKEN or --token-file)")
    parser.add_argument("--token-file", help="a file holding the bearer token")
    parser.add_argument("--expect-skip", help="JSON list of checks that do not apply, with reasons")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (10)")
    parser.add_argument("--seed", type=int, help="seed of the tester's random values (printed)")
    parser.add_argument("--min-checks", type=int, default=0, help="fail with fewer results than this")
    args = parser.parse_args()
    if not args.url.startswith(("http://", "https://")):
        parser.error("--url must be an http:// or https:// URL")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        return run(args)
    except Fatal as e:  # from read_token, before the redactor exists (it names no token)
        print(json.dumps({"fatal": str(e)}), flush=True)
        print(f"scim_tester.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
