"""Volumes as SPCS mounts them, on a catalog whose backend is a fake: a stage volume is the stage's folder
(in the current form and the deprecated one), a block volume is the service's own until it is dropped (across
upgrades), a local volume is one instance's, and uid and gid give a volume its owner."""

from pathlib import Path

import pytest

from spcs_local.emulator.results import SnowflakeError

from .fakes import LocalSPCS

IMAGE = "/tutorial_db/data_schema/tutorial_repository/my_job_image:latest"


def spec(volume: str, mount: str = "/data") -> str:
    return f"""spec:
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts:
    - name: data
      mountPath: {mount}
  volumes:
  - name: data
{volume}"""


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    spcs = LocalSPCS(tmp_path).with_pool_and_images("my_job_image")
    spcs.stages.stages.add("TUTORIAL_DB.DATA_SCHEMA.NOTEBOOKS")
    return spcs


def container_of(spcs: LocalSPCS, name: str, volume: str, instances: int = 1) -> list:
    spcs.sql(f"CREATE SERVICE {name} IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${spec(volume)}$$ "
             f"MIN_INSTANCES = {instances} MAX_INSTANCES = {instances}")  # fmt: skip
    spcs.sql(f"SELECT SYSTEM$WAIT_FOR_SERVICES(10, '{name}')")
    return [w.containers[0] for w in sorted(spcs.backend.started, key=lambda w: w.key) if f".{name.upper()}#" in w.key]


@pytest.mark.parametrize(
    "volume",
    [
        "    source: stage\n    stageConfig:\n      name: '@notebooks/work'\n    uid: 1000\n    gid: 100\n",
        "    source: '@notebooks/work'\n    uid: 1000\n    gid: 100\n",  # the deprecated form
    ],
)
def test_a_stage_volume_mounts_the_stages_folder_with_its_owner(spcs: LocalSPCS, volume: str) -> None:
    [container] = container_of(spcs, "jupyter", volume)

    folder = spcs.path / "stages" / "TUTORIAL_DB.DATA_SCHEMA.NOTEBOOKS" / "work"
    assert container.binds == {str(folder.resolve()): "/data"} and folder.is_dir()
    assert container.owners == {"/data": (1000, 100)}


def test_a_stage_volume_of_a_missing_stage_or_outside_it_is_refused(spcs: LocalSPCS) -> None:
    with pytest.raises(SnowflakeError, match=r"Stage 'TUTORIAL_DB\.DATA_SCHEMA\.NOPE' does not exist"):
        container_of(spcs, "nope", "    source: stage\n    stageConfig:\n      name: '@nope'\n")
    with pytest.raises(SnowflakeError, match="leaves its stage"):
        container_of(spcs, "escape", "    source: '@notebooks/../../..'\n")


def test_a_block_volume_is_the_services_across_upgrades_until_it_is_dropped(spcs: LocalSPCS) -> None:
    first, second = container_of(spcs, "kept", "    source: block\n    size: 10Gi\n", instances=2)
    assert (first.block, second.block) == (
        {"TUTORIAL_DB.DATA_SCHEMA.KEPT:data:0": "/data"}, {"TUTORIAL_DB.DATA_SCHEMA.KEPT:data:1": "/data"},
    )  # fmt: skip

    upgraded = spec("    source: block\n    size: 10Gi\n").replace("name: main", "name: main\n    env: {V: '2'}")
    spcs.sql(f"ALTER SERVICE kept FROM SPECIFICATION $${upgraded}$$")
    new = [workload.containers[0].block for workload in spcs.backend.started[-2:]]
    assert sorted(new, key=str) == [first.block, second.block]  # the new instances mount the same volumes
    assert spcs.backend.dropped_volumes == []
    spcs.sql("DROP SERVICE kept")
    assert spcs.backend.dropped_volumes == ["TUTORIAL_DB.DATA_SCHEMA.KEPT"]


def test_a_block_volume_from_a_snapshot_is_refused(spcs: LocalSPCS) -> None:
    volume = "    source: block\n    size: 10Gi\n    blockConfig:\n      initialContents:\n        fromSnapshot: snap\n"
    with pytest.raises(SnowflakeError, match="block volumes made from a snapshot"):
        container_of(spcs, "snapped", volume)


def test_a_local_volume_is_each_instances_own(spcs: LocalSPCS) -> None:
    first, second = container_of(spcs, "scratch", "    source: local\n", instances=2)

    # The same name in each instance's workload: the backend makes one volume per workload.
    assert first.volumes == second.volumes == {"data": "/data"}
    assert len({workload.key for workload in spcs.backend.started}) == 2
