"""The emulator's frames have the shapes of LivePerson's published ones (issue 14).

For every published response and notification of the corpus the scenario
(:mod:`tests.fidelity.scenario`) keeps the emulator's frame of the same type at the same moment
of the same flow; their JSON paths and value types must be the same, and their ``kind``,
``type``, ``code`` (and string bodies) equal.  A difference fails unless ``allowances.toml``
lists it with its reason; an allowance that no longer matches anything fails too, so the file
stays the list of what the emulator still does differently.  Every published request must be
accepted as published.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.fidelity.corpus import Allowance, Difference, load_allowances, load_corpus
from tests.fidelity.corpus import differences as frame_differences
from tests.fidelity.scenario import Run, play

CORPUS = load_corpus()
COMPARED = sorted(name for name, p in CORPUS.items() if p.kind != "request")
REQUESTS = sorted(name for name, p in CORPUS.items() if p.kind == "request")


@dataclass
class Report:
    run: Run
    allowances: list[Allowance]
    #: Frame name -> differences no allowance covers.
    unexplained: dict[str, list[Difference]]


@pytest.fixture(scope="module")
def report() -> Report:
    run = asyncio.run(asyncio.wait_for(play(CORPUS), 60))
    allowances = load_allowances()
    unexplained: dict[str, list[Difference]] = {}
    for name in COMPARED:
        if name not in run.frames:
            continue
        left = []
        for difference in frame_differences(CORPUS[name].frame, run.frames[name]):
            covering = [a for a in allowances if a.covers(name, difference)]
            for allowance in covering:
                allowance.used += 1
            if not covering:
                left.append(difference)
        unexplained[name] = left
    return Report(run, allowances, unexplained)


def test_the_corpus_names_its_sources() -> None:
    assert len(CORPUS) >= 60
    for published in CORPUS.values():
        assert published.url.startswith("https://"), published.name
        assert published.dialect in ("consumer", "brand", "webhook", "sendapi"), published.name
        assert published.kind in ("notification", "response", "request"), published.name


@pytest.mark.parametrize("name", COMPARED)
def test_emulator_frame_has_the_published_shape(report: Report, name: str) -> None:
    assert name in report.run.frames, f"the scenario produced no frame for {name}"
    left = report.unexplained[name]
    assert not left, (
        f"{name} ({CORPUS[name].url}) differs from the emulator's frame, and allowances.toml does not "
        "say why:\n  " + "\n  ".join(map(str, left))
    )


@pytest.mark.parametrize("name", REQUESTS)
def test_emulator_accepts_the_published_request(report: Report, name: str) -> None:
    assert name in report.run.answers, f"the scenario did not send {name}"
    answer = report.run.answers[name]
    if CORPUS[name].dialect == "sendapi":
        assert answer["status"] == 200 and all(r["code"] == "OK" for r in answer["body"]), answer
    else:
        assert answer["code"] < 400, answer


def test_every_allowance_is_still_needed(report: Report) -> None:
    stale = [f"{a.kind} {a.path} in {a.frames}" for a in report.allowances if a.used == 0]
    assert not stale, "allowances.toml lists differences the emulator no longer has:\n  " + "\n  ".join(stale)
