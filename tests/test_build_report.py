"""The internal-json parser and the report, pinned by real captured Nix 2.8 logs.

tests/fixtures/nix-logs/<scenario>.log is nix's stderr verbatim; <scenario>.json the plan
made before the build and the path-info after (capture.py in that folder re-records them).
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from nixcrate.build_report import (
    ActivityType,
    BuildReport,
    BuildTracker,
    Group,
    Item,
    Message,
    Result,
    Start,
    State,
    Stop,
    group_of,
    is_deps_closure,
    parse_line,
)
from nixcrate.errors import UsageError
from nixcrate.nix import (
    BuildPlan,
    BuildRun,
    PathInfo,
    parallelism,
    parse_derivations,
    parse_version,
    select_outputs,
)

LOGS = Path(__file__).parent / "fixtures" / "nix-logs"


def replay(scenario: str, *, shuffle: int | None = None) -> tuple[BuildTracker, BuildReport, list[str]]:
    """Feed a captured log to a tracker; `shuffle`: a seed to reorder the plan's derivations
    (the order of nix's JSON, and so of the tracker's walk; outputs are sorted by the plan)."""
    doc = json.loads((LOGS / f"{scenario}.json").read_text())
    outputs = [tuple(o) for o in doc["outputs"]]
    shown = list(doc["derivations"].items())
    if shuffle is not None:
        random.Random(shuffle).shuffle(shown)
    plan = BuildPlan(
        flake=doc["flake"],
        system=doc["system"],
        outputs=tuple((name, drv) for name, drv in outputs),
        derivations=parse_derivations(dict(shown)),
        valid=frozenset(doc["valid"]),
    )
    ticks = itertools.count()
    tracker = BuildTracker(plan, clock=lambda: float(next(ticks)))  # one second an event
    notices = [n for line in (LOGS / f"{scenario}.log").read_text().splitlines(keepends=True) if (n := tracker.feed(line))]
    infos = {p: PathInfo(size, when) for p, (size, when) in doc["path_info"].items()}
    run = BuildRun(doc["returncode"], "", interrupted=False, started=0.0, finished=float(next(ticks)))
    return tracker, tracker.report(run, infos), notices


def states(report: BuildReport) -> dict[str, State]:
    return {i.name: i.state for i in report.items}


@pytest.mark.parametrize("scenario", sorted(p.stem for p in LOGS.glob("*.log")))
def test_validity_read_during_the_build_gives_the_same_report(scenario: str) -> None:
    """`nix.BackgroundPlan` may read validity after nix built or fetched part of the closure,
    and hand the plan over only after the events: the report must not change."""
    _, expected, _ = replay(scenario)
    doc = json.loads((LOGS / f"{scenario}.json").read_text())
    derivations = parse_derivations(doc["derivations"])
    # What the validity query sees once nix is done: every output in the store then.
    late = frozenset(d.drv_path for d in derivations.values() if d.outputs and all(p in doc["path_info"] for p in d.out_paths))
    assert late >= frozenset(doc["valid"])
    plan = BuildPlan(doc["flake"], doc["system"], tuple(map(tuple, doc["outputs"])), derivations, late)
    ticks = itertools.count()
    tracker = BuildTracker(None, clock=lambda: float(next(ticks)))
    for line in (LOGS / f"{scenario}.log").read_text().splitlines(keepends=True):
        tracker.feed(line)
    tracker.set_plan(plan)
    infos = {p: PathInfo(size, when) for p, (size, when) in doc["path_info"].items()}
    run = BuildRun(doc["returncode"], "", interrupted=False, started=0.0, finished=float(next(ticks)))
    assert tracker.report(run, infos) == expected


def test_parse_line_reads_each_action() -> None:
    start = parse_line('@nix {"action":"start","fields":["/s/x.drv","",1,1],"id":7,"level":3,"text":"building \'/s/x.drv\'","type":105}\n')
    assert start == Start(7, ActivityType.BUILD, "building '/s/x.drv'", ("/s/x.drv", "", 1, 1))
    assert parse_line('@nix {"action":"stop","id":7}') == Stop(7)
    assert parse_line('@nix {"action":"result","fields":["hello"],"id":7,"type":101}') == Result(7, 101, ("hello",))
    assert parse_line('@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m boom"}') == Message(0, "error: boom")
    assert parse_line("error: plain text before the logger") == Message(0, "error: plain text before the logger")
    assert parse_line("\n") is None


@pytest.mark.parametrize("scenario", sorted(p.stem for p in LOGS.glob("*.log")))
def test_every_captured_line_parses(scenario: str) -> None:
    for line in (LOGS / f"{scenario}.log").read_text().splitlines():
        assert line.startswith("@nix {")
        assert parse_line(line) is not None


def test_closure_built_from_nothing() -> None:
    _, report, notices = replay("closure-built")
    assert states(report) == {"vendor-cargo-deps": State.BUILT, "workspace-deps-0.0.0": State.BUILT}
    assert [i.group for i in report.items] == [Group.SOURCE, Group.BUILD]
    assert report.deps_closure_reused is False
    assert notices[0] == "building vendor-cargo-deps"
    assert all(i.seconds is not None and i.seconds > 0 for i in report.items)


def test_one_service_on_a_present_closure() -> None:
    _, report, _ = replay("one-service-built")
    assert states(report) == {"api-0.1.0": State.BUILT, "workspace-deps-0.0.0": State.PRESENT}
    assert report.deps_closure_reused is True
    assert report.cache_reuse == 0.5
    assert report.summary() == "built 1 (%.1f s), fetched 0, present 1; cache reuse 50%% (1/2); deps closure reused" % report.built_seconds


def test_all_present() -> None:
    _, report, notices = replay("all-present")
    assert states(report) == {"api-0.1.0": State.PRESENT}
    assert report.cache_reuse == 1
    assert notices == []


def test_parallel_builds_all_end() -> None:
    tracker, report, _ = replay("parallel-built")
    assert states(report) == dict.fromkeys(["billing-0.1.0", "ingest-0.1.0", "worker-0.1.0"], State.BUILT) | {
        "workspace-deps-0.0.0": State.PRESENT
    }
    assert tracker.running == []
    assert tracker.done == tracker.expected == 3


def test_failed_build_keeps_its_log_tail() -> None:
    tracker, report, notices = replay("failed")
    assert states(report) == {"broken-0.1.0": State.FAILED, "workspace-deps-0.0.0": State.PRESENT}
    (broken,) = (i for i in report.items if i.state is State.FAILED)
    assert broken.log_tail == tuple(f"log line {i}" for i in range(6, 31))
    assert "failed broken-0.1.0" in notices
    assert not any(n.startswith("built broken") for n in notices)
    assert report.returncode == 1


def test_fetched_names_the_cache() -> None:
    _, report, notices = replay("fetched")
    cache = "file:///tmp/nixcrate-capture/binary-cache"
    assert states(report) == {"api-0.1.0": State.FETCHED, "worker-0.1.0": State.FETCHED}
    assert {i.cache for i in report.items} == {cache}
    assert report.caches == ((cache, 2),)
    assert all(i.size for i in report.items)
    assert f"fetched 2 from {cache}" in report.summary()
    assert any(n.startswith("fetched api-0.1.0 from file://") for n in notices)


@pytest.mark.parametrize("seed", [1, 4, 9])
def test_json_and_table_are_deterministic_whatever_the_item_order(seed: int) -> None:
    """The tracker's report of a plan whose derivations come in another order is the same,
    byte for byte: the report orders its items itself."""
    _, report, _ = replay("parallel-built")
    _, again, _ = replay("parallel-built", shuffle=seed)

    def render(r: BuildReport) -> str:
        console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115, PTH123
        r.print(console, console)
        return console.export_text()

    # sources first, then by name: not the order the tracker meets them (a walk by .drv path)
    order = [(i.group is not Group.SOURCE, i.name) for i in report.items]
    assert order == sorted(order)
    assert [i.name for i in again.items] == [i.name for i in report.items]
    assert again.json_text() == report.json_text()
    assert render(again) == render(report)
    assert json.loads(report.json_text())["summary"]["built"] == 3


def test_markdown_table() -> None:
    item = Item("api-0.1.0", "/s/a.drv", State.FETCHED, Group.BUILD, 1.25, 3 * 1024 * 1024, "https://c.example", False)
    md = BuildReport((item,), (), 0, False, ()).markdown()
    assert md.splitlines()[:5] == [
        "### nixcrate build",
        "",
        "| derivation | group | state | time | size |",
        "| --- | --- | --- | --- | --- |",
        "| `api-0.1.0` | build | fetched from https://c.example | 1.2 s | 3.0 MiB |",
    ]
    assert "**built 0 (0.0 s), fetched 1 from https://c.example, present 0; cache reuse 100% (1/1)**" in md


@pytest.mark.parametrize(
    ("name", "fixed", "group"),
    [
        ("workspace-vendor-cargo-deps", False, Group.SOURCE),
        ("vendor-cargo-deps", False, Group.SOURCE),
        ("cargo-package-serde-1.0.200", False, Group.SOURCE),
        ("serde-1.0.200.crate", False, Group.SOURCE),
        ("source", False, Group.SOURCE),
        ("anything", True, Group.SOURCE),
        ("workspace-deps-0.0.0", False, Group.BUILD),
        ("api-0.1.0", False, Group.BUILD),
    ],
)
def test_source_group(name: str, fixed: bool, group: Group) -> None:
    assert group_of(name, fixed_output=fixed) is group


def test_deps_closure_names() -> None:
    assert is_deps_closure("workspace-deps-0.0.0", Group.BUILD)
    assert is_deps_closure("lambdas-deps", Group.BUILD)
    assert not is_deps_closure("vendor-cargo-deps", Group.SOURCE)
    assert not is_deps_closure("deps-tool-1.0", Group.BUILD)


@pytest.mark.parametrize(
    ("cores", "buildable", "expected"),
    [
        (1, 0, (1, 1)),
        (1, 5, (1, 1)),
        (2, 1, (1, 2)),
        (2, 3, (2, 1)),
        (16, 1, (1, 16)),
        (16, 3, (3, 5)),
        (16, 40, (16, 1)),
        (64, 1, (1, 64)),
        (64, 4, (4, 16)),
        (64, 200, (64, 1)),
    ],
)
def test_parallelism(cores: int, buildable: int, expected: tuple[int, int]) -> None:
    assert parallelism(cores, buildable) == expected


@given(st.integers(1, 512), st.integers(0, 1000))
def test_parallelism_never_oversubscribes(cores: int, buildable: int) -> None:
    jobs, threads = parallelism(cores, buildable)
    assert 1 <= jobs <= max(1, min(cores, buildable))
    assert threads >= 1
    assert jobs * threads <= cores
    assert jobs * threads > cores - jobs  # and leaves less than one job's share idle


def test_select_outputs_skips_closures_and_suggests() -> None:
    names = ["api", "deployCargoArtifacts", "lambdaDeployCargoArtifacts", "deploy-lambda-ingest"]
    assert select_outputs(names, ()) == ("api", "deploy-lambda-ingest")
    assert select_outputs(names, ("deployCargoArtifacts",)) == ("deployCargoArtifacts",)
    with pytest.raises(UsageError, match=r"'apu' is not an output of the flake: did you mean api\?"):
        select_outputs(names, ("apu",))


def test_parse_version() -> None:
    assert parse_version("nix (Nix) 2.8.0\n") == (2, 8, 0)
    assert parse_version("nix (Nix) 2.18.1pre20231009_dirty") == (2, 18, 1)
