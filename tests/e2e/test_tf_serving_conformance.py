"""TF Serving's own test cases, run against `movierec serve`.

Each case of tests/e2e/tfs_conformance/*.yaml was read in a test file of tensorflow/serving at tag
2.16.1 (util/json_tensor_test.cc, model_servers/http_rest_api_handler_test.cc, ...) and carries its
inputs and expected outputs as data: the referee is TF Serving's own test. Cases that cannot apply
to a stand-in say why (`not_applicable`) and are listed in docs/tf-serving-rules.md, which this
module checks too. The servers (tests/tfs_conformance.py Servers) start once for the module.
"""
import re

import pytest

from tests import tfs_conformance
from tests.tfs_conformance import Servers

CASES = tfs_conformance.cases()
DOCS = tfs_conformance.VECTORS.parents[2] / "docs" / "tf-serving-rules.md"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("tfs-conformance"))
    servers.prepare()
    servers.start()
    for name in ("main", "flags"):
        servers.wait_ready(name)
    yield servers
    codes = servers.stop()
    assert codes["main"] == 0 and codes["flags"] == 0, codes


@pytest.mark.parametrize("case", [c for c in CASES if not c.not_applicable], ids=lambda c: c.id)
def test_case(servers, case):
    tfs_conformance.run(servers, case)


def test_every_case_cites_its_source_and_not_applicable_ones_are_documented():
    """Each file names a TF Serving source file and each case a TEST in it; the docs list every
    case that does not apply, with the same reason, and the counts."""
    docs = DOCS.read_text()
    for case in CASES:
        assert case.source.startswith("tensorflow_serving/") and case.test, case
        assert case.steps or case.not_applicable, case.id
    for source, test, reason in tfs_conformance.not_applicable_table():
        assert f"| `{source.split('tensorflow_serving/')[1]}` | `{test}` | {reason} |" in docs, (test, reason)
    counts = tfs_conformance.counts()
    assert re.search(rf"{counts['carried']} cases carried, {counts['run']} run, {counts['not_applicable']} not "
                     "applicable", docs), counts
