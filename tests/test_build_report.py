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
    parse_line,
)
from nixcrate.closure_reuse import output_name
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
    assert states(report) == {"vendor-cargo-deps": State.BUILT, "inheritCargoArtifactsHook": State.BUILT, "deploy-deps-0.0.0": State.BUILT}
    # the cargo builds first, then the hooks and wrappers, then the sources
    assert [(i.name, i.group) for i in report.items] == [
        ("deploy-deps-0.0.0", Group.COMPILE),
        ("inheritCargoArtifactsHook", Group.OTHER),
        ("vendor-cargo-deps", Group.SOURCE),
    ]
    assert [i.closure for i in report.closure_items()] == ["deployCargoArtifacts"]
    assert "building vendor-cargo-deps" in notices
    assert all(i.seconds is not None and i.seconds > 0 for i in report.items)
    assert {i.machine for i in report.items} == {"local"}


def test_one_service_on_a_present_closure() -> None:
    _, report, _ = replay("one-service-built")
    assert states(report) == {
        "api-0.1.0": State.BUILT,
        "deploy-deps-0.0.0": State.PRESENT,
        "inheritCargoArtifactsHook": State.PRESENT,
        "vendor-cargo-deps": State.PRESENT,
    }
    assert report.cache_reuse == 0.5  # of the two cargo builds; the hook and the vendoring do not count
    seconds = report.built_seconds
    assert report.summary() == (
        f"cargo builds: 1 of 2 reused (50%): built 1 ({seconds:.1f} s), fetched 0, present 1; "
        f"all 4 derivations: built 1 ({seconds:.1f} s), fetched 0, present 3; closures: deployCargoArtifacts reused"
    )


def test_reuse_counts_the_cargo_builds_not_the_hooks_around_a_rebuilt_closure() -> None:
    """The handlers' closure rebuilt, its hooks and sources present: counting every
    derivation (as nixcrate once did) called that mostly reused."""
    _, report, _ = replay("parallel-built")
    compiling = {i.name: i.state for i in report.compiling}
    assert compiling["lambda-deploy-deps-0.0.0"] is State.BUILT
    assert report.cache_reuse == 1 / 5  # the services' closure only
    reused_of_all = (report.count(State.PRESENT) + report.count(State.FETCHED)) / len(report.items)
    assert reused_of_all > report.cache_reuse
    doc = json.loads(report.json_text())
    assert doc["summary"]["cache_reuse"] == 0.2
    assert doc["summary"]["compiling"] == doc["summary"]["compiling"] | {"total": 5, "built": 4, "present": 1, "reused": 0.2}
    assert doc["summary"]["total"] == 8
    assert "cargo builds: 1 of 5 reused (20%)" in report.summary()
    assert "closures: deployCargoArtifacts reused, lambdaDeployCargoArtifacts built" in report.summary()


def test_a_remote_builder_is_named_for_what_it_built() -> None:
    """A real ssh-ng builder (sshd on 127.0.0.1, capture.py): the cargo builds went there,
    the preferLocalBuild hook and vendoring stayed here. The remote nix's own activities
    (a local build of the same .drv, its own Builds counter) are part of the one build."""
    tracker, report, notices = replay("remote-built")
    machine = {i.name: i.machine for i in report.items}
    remote = next(m for m in machine.values() if m and m.startswith("ssh-ng://"))
    assert remote.startswith("ssh-ng://root@127.0.0.1?remote-program=")
    assert machine == {"api-0.1.0": remote, "deploy-deps-0.0.0": remote, "inheritCargoArtifactsHook": "local", "vendor-cargo-deps": "local"}
    assert set(states(report).values()) == {State.BUILT}
    assert "built 2 (" in report.summary() and "2 on ssh-ng://root@127.0.0.1)" in report.summary()
    assert "building deploy-deps-0.0.0 on ssh-ng://root@127.0.0.1" in notices
    assert notices.count("building api-0.1.0 on ssh-ng://root@127.0.0.1") == 1  # not again for the remote's own activity
    assert tracker.running == []
    assert tracker.builds[report.items[0].drv].log  # its log lines came through the remote's activity
    doc = json.loads(report.json_text())
    by_name = {d["name"]: d for d in doc["derivations"]}
    assert by_name["api-0.1.0"]["built_on"] == remote
    assert by_name["vendor-cargo-deps"]["built_on"] == "local"
    assert doc["summary"]["built_on"] == {"local": 2, remote: 2}
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115, PTH123
    report.print(console, console)
    row = next(line for line in console.export_text().splitlines() if line.startswith("api-0.1.0"))
    assert "ssh-ng://root@127.0.0.1" in row and "remote-program" not in row


def test_all_present() -> None:
    _, report, notices = replay("all-present")
    assert states(report) == {"api-0.1.0": State.PRESENT}
    assert report.cache_reuse == 1
    assert notices == []


def test_parallel_builds_all_end() -> None:
    tracker, report, _ = replay("parallel-built")
    built = ["billing-0.1.0", "lambda-ingest-0.1.0", "worker-0.1.0", "lambda-deploy-deps-0.0.0", "deploy-lambda-ingest"]
    present = ["deploy-deps-0.0.0", "inheritCargoArtifactsHook", "vendor-cargo-deps"]
    assert states(report) == dict.fromkeys(built, State.BUILT) | dict.fromkeys(present, State.PRESENT)
    assert tracker.running == []
    assert tracker.done == tracker.expected == 5
    assert tracker.compiling_done == tracker.compiling_expected == 4


def test_failed_build_keeps_its_log_tail() -> None:
    tracker, report, notices = replay("failed")
    assert states(report) == {
        "broken-0.1.0": State.FAILED,
        "deploy-deps-0.0.0": State.PRESENT,
        "inheritCargoArtifactsHook": State.PRESENT,
        "vendor-cargo-deps": State.PRESENT,
    }
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

    # cargo builds first, sources last, then by name: not the order the tracker meets them
    # (a walk by .drv path)
    order = [(list(Group).index(i.group), i.name) for i in report.items]
    assert order == sorted(order)
    assert [i.name for i in again.items] == [i.name for i in report.items]
    assert again.json_text() == report.json_text()
    assert render(again) == render(report)
    assert json.loads(report.json_text())["summary"]["built"] == 5


def test_the_table_shows_the_cargo_builds_and_v_every_derivation_folded_by_name() -> None:
    _, report, _ = replay("parallel-built")

    def render(*, verbose: bool) -> list[str]:
        console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115, PTH123
        report.print(console, console, verbose=verbose)
        return console.export_text().splitlines()

    short = render(verbose=False)
    # the cargo builds, by the closures' output names, and the requested zip
    assert [ln.split()[0] for ln in short if ln.split() and ln.split()[0] in {i.closure or i.name for i in report.items}] == [
        "billing-0.1.0",
        "deployCargoArtifacts",
        "lambdaDeployCargoArtifacts",
        "lambda-ingest-0.1.0",
        "worker-0.1.0",
        "deploy-lambda-ingest",
    ]
    assert not any(ln.startswith(("inheritCargoArtifactsHook", "vendor-cargo-deps")) for ln in short)
    assert "and 2 other derivations (hooks, wrappers, manifests, sources): built 0 (0.0 s), fetched 0, present 2; -v lists them" in short
    full = render(verbose=True)
    assert any(ln.startswith("inheritCargoArtifactsHook") and "present" in ln for ln in full)
    assert any(ln.startswith("vendor-cargo-deps") for ln in full)
    assert not any("-v lists them" in ln for ln in full)
    assert not any("/nix/store/" in ln or "/tmp/nixcrate-capture/nix/store/" in ln for ln in full if not ln.startswith(("deploy-lambda-ingest:", "billing:", "worker:")))


def test_v_folds_a_name_repeated_in_one_state() -> None:
    """crane writes one Cargo.toml (and one dummy source) per member: one row each for
    230 of them is a dump, not a table."""
    items = tuple(Item("Cargo.toml", f"/s/{n}-Cargo.toml.drv", State.PRESENT, Group.OTHER, None, 100, None) for n in range(7))
    items += (Item("api-0.1.0", "/s/a.drv", State.BUILT, Group.COMPILE, 2.0, 10, None, machine="local"),)
    rows = BuildReport(items, (), 0, False, ()).rows(verbose=True)
    assert [(label, count, size) for label, _, count, _, size in rows] == [("Cargo.toml", 7, 700), ("api-0.1.0", 1, 10)]


def test_markdown_table() -> None:
    item = Item("api-0.1.0", "/s/a.drv", State.FETCHED, Group.COMPILE, 1.25, 3 * 1024 * 1024, "https://c.example")
    hook = Item("inheritCargoArtifactsHook", "/s/h.drv", State.PRESENT, Group.OTHER, None, 120, None)
    md = BuildReport((item, hook), (), 0, False, ()).markdown()
    assert md.splitlines()[:5] == [
        "### nixcrate build",
        "",
        "| derivation | group | state | where | time | size |",
        "| --- | --- | --- | --- | --- | --- |",
        "| `api-0.1.0` | compile | fetched | https://c.example | 1.2 s | 3.0 MiB |",
    ]
    assert (
        "**cargo builds: 1 of 1 reused (100%): built 0 (0.0 s), fetched 1 from https://c.example, present 0; "
        "all 2 derivations: built 0 (0.0 s), fetched 1 from https://c.example, present 1**"
    ) in md
    folded = md[md.index("<details>") :]
    assert "| `inheritCargoArtifactsHook` | other | present | store |  | 120 B |" in folded


@pytest.mark.parametrize(
    ("name", "fixed", "group"),
    [
        ("workspace-vendor-cargo-deps", False, Group.SOURCE),
        ("vendor-cargo-deps", False, Group.SOURCE),
        ("cargo-package-serde-1.0.200", False, Group.SOURCE),
        ("serde-1.0.200.crate", False, Group.SOURCE),
        ("source", False, Group.SOURCE),
        ("anything", True, Group.SOURCE),
        ("deploy-deps-0.0.0", False, Group.OTHER),  # named like a closure, but not a cargo build
        ("inheritCargoArtifactsHook", False, Group.OTHER),
    ],
)
def test_source_group(name: str, fixed: bool, group: Group) -> None:
    assert group_of(name, fixed_output=fixed) is group
    assert group_of(name, fixed_output=fixed, compiles=True) is Group.COMPILE


def test_closure_output_names() -> None:
    assert output_name("deploy-deps-0.0.0") == "deployCargoArtifacts"
    assert output_name("lambda-deploy-deps-0.0.0") == "lambdaDeployCargoArtifacts"
    assert output_name("checks-deps-0.0.0") == "checkCargoArtifacts"
    assert output_name("mine-deps-1.2.0") == "mine-deps-1.2.0"  # someone else's closure: its own name
    assert output_name("deploy-deps-0.0.0", {"deploy-deps-0.0.0": "myArtifacts"}) == "myArtifacts"


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
