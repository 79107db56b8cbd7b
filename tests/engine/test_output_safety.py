"""Outputs never lose a user's data (issue 10): appends only add, other layers and files are never touched,
parallel writers and killed writers lose nothing, full and read-only folders are refused before work,
text is stored exactly or refused. Real GeoPackages, real processes, real file systems."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import fiona
import pytest
from fiona.crs import CRS as FionaCRS
from pyproj import CRS
from shapely.geometry import Point, Polygon

from model_backend.core.errors import InvalidArgumentError, OutputBusyError, OutputError
from model_backend.geo.outputs import Feature, QuestionRecord, check_output, read_layer, write_record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTM = CRS.from_epsg(32618)
SQUARE = Polygon([(100000, 2800000), (101000, 2800000), (101000, 2801000), (100000, 2801000)])
VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"


def record(text: str, n: int = 0) -> QuestionRecord:
    q, a = f"q{n}", f"a{n}"
    r = QuestionRecord(crs=UTM)
    r.prompts.append(Feature(SQUARE, {"question_id": q, "prompt_index": 1, "kind": "box"}))
    r.answers.append(Feature(SQUARE, {"answer_id": a, "question_id": q, "question": "What is here?", "answer": text,
                                      "task": "region_captioning", "modality": "optical", "model": "tiny",
                                      "backend": "local", "quantization": "fp32", "raster_source": "x.tif",
                                      "chip_resolution": 30.0, "finish_reason": "stop", "created": "2026-12-03"}))
    r.detections.append(Feature(Point(100500, 2800500), {"answer_id": a, "label": "ship", "rank": 1, "kind": "point"}))
    return r


def user_gpkg(path: str) -> None:
    """A GeoPackage of the user's, written by GDAL: a ``roads`` layer of three lines."""
    schema = {"geometry": "LineString", "properties": {"name": "str", "lanes": "int"}}
    with fiona.open(path, "w", driver="GPKG", layer="roads", schema=schema, crs=FionaCRS.from_epsg(32618)) as dst:
        for k in range(3):
            dst.write({"geometry": {"type": "LineString", "coordinates": [(k, 0), (k, 10)]},
                       "properties": {"name": f"road {k}", "lanes": k + 1}})


def table_rows(path: str, table: str) -> list:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()


def assert_valid_gpkg(path: str) -> None:
    """GDAL's own GeoPackage validator (python3-gdal, installed with QGIS) accepts ``path``."""
    done = subprocess.run(["/usr/bin/python3", VALIDATOR, path], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_append_adds_beside_the_users_layers_without_rewriting_the_file(tmp_path):
    out = str(tmp_path / "site.gpkg")
    user_gpkg(out)
    roads, inode = table_rows(out, "roads"), os.stat(out).st_ino
    write_record(out, record("first", 1))
    write_record(out, record("second", 2))
    assert fiona.listlayers(out) == ["roads", "prompts", "answers", "detections"]
    assert table_rows(out, "roads") == roads and os.stat(out).st_ino == inode
    with fiona.open(out, layer="roads") as src:
        assert [f["properties"]["name"] for f in src] == ["road 0", "road 1", "road 2"]
    assert [a.properties["answer"] for a in read_layer(out, "answers")] == ["first", "second"]
    with fiona.open(out, layer="detections") as src:
        assert len(src) == 2 and src.bounds == (100500, 2800500, 100500, 2800500)
    assert_valid_gpkg(out)


def test_a_new_geopackage_is_valid_and_reprojects_into_its_layers_crs(tmp_path):
    out = str(tmp_path / "new.gpkg")
    write_record(out, record("utm"))
    geographic = QuestionRecord(crs=CRS.from_epsg(4326))
    geographic.answers.append(Feature(Polygon([(-77.6, 24.3), (-77.5, 24.3), (-77.5, 24.4)]),
                                      record("wgs84").answers[0].properties))
    write_record(out, geographic)
    with fiona.open(out, layer="answers") as src:
        assert CRS.from_user_input(src.crs) == UTM
        xs = [f["geometry"]["coordinates"][0][0][0] for f in src]
    assert 100000 < xs[1] < 900000  # eastings, not degrees
    assert_valid_gpkg(out)


def test_a_layer_of_our_name_but_not_ours_is_refused_and_left_as_it_was(tmp_path):
    out = str(tmp_path / "site.gpkg")
    schema = {"geometry": "Point", "properties": {"comment": "str"}}
    with fiona.open(out, "w", driver="GPKG", layer="answers", schema=schema, crs=FionaCRS.from_epsg(32618)) as dst:
        dst.write({"geometry": {"type": "Point", "coordinates": (1, 2)}, "properties": {"comment": "mine"}})
    before = open(out, "rb").read()
    for call in (lambda: check_output(out), lambda: write_record(out, record("x"))):
        with pytest.raises(OutputError, match="not written by EarthGPT-X"):
            call()
    assert open(out, "rb").read() == before and fiona.listlayers(out) == ["answers"]


def test_a_file_that_is_not_a_geopackage_is_refused_unchanged(tmp_path):
    out = tmp_path / "notes.gpkg"
    out.write_bytes(b"just some notes\n")
    for call in (lambda: check_output(str(out)), lambda: write_record(str(out), record("x"))):
        with pytest.raises(OutputError, match="not a GeoPackage"):
            call()
    assert out.read_bytes() == b"just some notes\n"


def test_an_empty_file_becomes_a_geopackage(tmp_path):
    out = tmp_path / "new.gpkg"
    out.write_bytes(b"")  # what a file dialog or another writer's first moment leaves
    write_record(str(out), record("x"))
    assert [a.properties["answer"] for a in read_layer(str(out), "answers")] == ["x"]


def test_an_sqlite_database_that_is_not_a_geopackage_is_refused(tmp_path):
    out = str(tmp_path / "app.gpkg")
    with sqlite3.connect(out) as db:
        db.execute("CREATE TABLE settings (k TEXT, v TEXT)")
    before = open(out, "rb").read()
    with pytest.raises(OutputError, match="not a GeoPackage"):
        write_record(out, record("x"))
    assert open(out, "rb").read() == before


def test_a_folder_named_like_the_output_is_refused(tmp_path):
    (tmp_path / "x.gpkg").mkdir()
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        check_output(str(tmp_path / "x.gpkg"))


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_output_safety import record
    from model_backend.geo.outputs import write_record
    out, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for n in range(first, first + count):
        write_record(out, record("answer %d" % n, n))
        print(n, flush=True)
""")


def writer(out: str, first: int, count: int) -> subprocess.Popen:
    script = WRITER.format(root=ROOT, tests=os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen([sys.executable, "-c", script, out, str(first), str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("ext", ["gpkg", "shp"])
def test_parallel_writers_lose_no_answer(tmp_path, ext):
    out = str(tmp_path / f"site.{ext}")
    procs = [writer(out, 100 * k, 15) for k in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ids = sorted(a.properties["answer_id"] for a in read_layer(out, "answers"))
    assert ids == sorted(f"a{100 * k + n}" for k in range(4) for n in range(15))
    assert len(read_layer(out, "prompts")) == len(read_layer(out, "detections")) == 60


def test_a_writer_kept_waiting_gets_output_busy_and_writes_nothing(tmp_path):
    out = str(tmp_path / "site.gpkg")
    write_record(out, record("first", 1))
    holder = sqlite3.connect(out, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        t0 = time.monotonic()
        with pytest.raises(OutputBusyError, match="output busy"):
            write_record(out, record("second", 2), timeout_s=0.5)
        assert 0.4 < time.monotonic() - t0 < 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [a.properties["answer"] for a in read_layer(out, "answers")] == ["first"]
    write_record(out, record("third", 3), timeout_s=0.5)
    assert len(read_layer(out, "answers")) == 2


def test_a_writer_killed_at_any_moment_leaves_whole_questions(tmp_path):
    out = str(tmp_path / "site.gpkg")
    user_gpkg(out)
    roads = table_rows(out, "roads")
    for delay in (0.9, 1.3, 1.7):
        p = writer(out, int(delay * 1000), 10000)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        answers, prompts = read_layer(out, "answers"), read_layer(out, "prompts")
        assert len(answers) == len(prompts) == len(read_layer(out, "detections"))
        assert {a.properties["question_id"] for a in answers} == {p.properties["question_id"] for p in prompts}
    assert len(answers) > 0 and table_rows(out, "roads") == roads
    write_record(out, record("after the kills", 99999))
    assert read_layer(out, "answers")[-1].properties["answer"] == "after the kills"
    assert_valid_gpkg(out)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 2 MiB file system (tmpfs), to fill; skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("ext", ["gpkg", "shp"])
def test_a_full_disk_is_found_before_the_work_and_an_append_to_it_loses_nothing(small_tmpfs, ext):
    out = str(small_tmpfs / f"site.{ext}")
    write_record(out, record("kept", 1))
    before = {f: (small_tmpfs / f).read_bytes() for f in os.listdir(small_tmpfs) if (small_tmpfs / f).is_file()}
    filler = small_tmpfs / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        os.close(fd)
    with pytest.raises(OutputError, match="[Nn]o space left"):
        check_output(out)
    with pytest.raises(OutputError):
        write_record(out, record("x" * 300000, 2))
    filler.unlink()
    after = {f: (small_tmpfs / f).read_bytes() for f in os.listdir(small_tmpfs) if (small_tmpfs / f).is_file()}
    assert after == before
    assert [a.properties["answer"] for a in read_layer(out, "answers")] == ["kept"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder holding an output, bind-mounted read-only (root would ignore chmod)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    write_record(str(folder / "site.gpkg"), record("kept"))
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize("name", ["site.gpkg", "other.gpkg", "site.shp"])
def test_a_read_only_folder_is_refused_before_the_work(read_only_folder, name):
    out = str(read_only_folder / name)
    with pytest.raises(OutputError, match="cannot write|read-only"):
        check_output(out)
    with pytest.raises(OutputError, match="cannot write|read-only"):
        write_record(out, record("lost"))
    assert [a.properties["answer"] for a in read_layer(str(read_only_folder / "site.gpkg"), "answers")] == ["kept"]


def test_an_immutable_geopackage_is_refused(tmp_path):
    out = tmp_path / "site.gpkg"
    write_record(str(out), record("kept"))
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here")
    try:
        with pytest.raises(OutputError, match="cannot write|read-only"):
            write_record(str(out), record("lost"))
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert [a.properties["answer"] for a in read_layer(str(out), "answers")] == ["kept"]


def test_nul_and_lone_surrogates_are_escaped_and_reported(tmp_path):
    text = "before\x00after \ud800 end"
    for ext in ("gpkg", "shp"):
        out = str(tmp_path / f"site.{ext}")
        report = write_record(out, record(text))
        assert report.escaped_fields == ["answer"]
        assert read_layer(out, "answers")[0].properties["answer"] == "before\\u0000after \\ud800 end"


def test_runs_of_spaces_survive_a_geopackage_and_are_refused_by_a_shapefile(tmp_path):
    text = "start" + " " * 600 + "end"
    write_record(str(tmp_path / "site.gpkg"), record(text))
    assert read_layer(str(tmp_path / "site.gpkg"), "answers")[0].properties["answer"] == text
    with pytest.raises(OutputError, match="run of spaces.*GeoPackage"):
        write_record(str(tmp_path / "site.shp"), record(text))
    assert not [f for f in os.listdir(tmp_path) if f.startswith("site_")]


def test_spaces_at_the_ends_of_a_text_are_dropped_from_a_shapefile_and_reported(tmp_path):
    report = write_record(str(tmp_path / "site.shp"), record(" yes, a harbour  "))
    assert report.trimmed_fields == ["answer"]
    assert read_layer(str(tmp_path / "site.shp"), "answers")[0].properties["answer"] == "yes, a harbour"
    report = write_record(str(tmp_path / "site.gpkg"), record(" yes, a harbour  "))
    assert report.trimmed_fields == [] and read_layer(str(tmp_path / "site.gpkg"), "answers")[0].properties[
        "answer"] == " yes, a harbour  "


def test_an_answer_too_long_for_a_shapefile_is_refused_before_writing(tmp_path):
    out = str(tmp_path / "site.shp")
    write_record(out, record("short", 1))
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path) if f.startswith("site_")}
    with pytest.raises(OutputError, match="too long for a shapefile.*GeoPackage"):
        write_record(out, record("word " * 20000, 2))
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path) if f.startswith("site_")} == before


def user_shapefile(path: str, fields: dict) -> None:
    schema = {"geometry": "Point", "properties": fields}
    with fiona.open(path, "w", driver="ESRI Shapefile", schema=schema, crs=FionaCRS.from_epsg(32618)) as dst:
        dst.write({"geometry": {"type": "Point", "coordinates": (1, 2)}, "properties": {k: "x" for k in fields}})


def folder_bytes(folder, names):
    return {n: (folder / n).read_bytes() for n in names}


def test_a_shapefile_output_never_touches_a_users_file_of_a_similar_name(tmp_path):
    user_shapefile(str(tmp_path / "site_answers_2019.shp"), {"note": "str"})
    users = [f for f in os.listdir(tmp_path) if f.startswith("site_answers_2019")]
    before = folder_bytes(tmp_path, users)
    write_record(str(tmp_path / "site.shp"), record("one", 1))
    write_record(str(tmp_path / "site.shp"), record("two", 2))
    assert folder_bytes(tmp_path, users) == before
    assert [a.properties["answer"] for a in read_layer(str(tmp_path / "site.shp"), "answers")] == ["one", "two"]


def test_a_users_shapefile_with_exactly_our_name_is_refused(tmp_path):
    user_shapefile(str(tmp_path / "site_answers.shp"), {"note": "str"})
    users = [f for f in os.listdir(tmp_path) if f.startswith("site_answers")]
    before = folder_bytes(tmp_path, users)
    for call in (lambda: check_output(str(tmp_path / "site.shp")), lambda: write_record(str(tmp_path / "site.shp"),
                                                                                          record("x"))):
        with pytest.raises(OutputError, match="site_answers.* not written by EarthGPT-X"):
            call()
    assert folder_bytes(tmp_path, users) == before
    assert not os.path.exists(tmp_path / "site_prompts_polygon.shp")


def test_shapefiles_written_before_the_list_of_sets_are_adopted(tmp_path):
    write_record(str(tmp_path / "site.shp"), record("old", 1))
    state = tmp_path / ".site.earthgptx"
    (state / "sets.json").unlink()  # as 0.1 left its outputs: no list of sets
    write_record(str(tmp_path / "site.shp"), record("new", 2))
    assert [a.properties["answer"] for a in read_layer(str(tmp_path / "site.shp"), "answers")] == ["old", "new"]


KILL_MID_SWAP = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_output_safety import record
    from model_backend.geo.outputs import write_record
    real_replace, moved = os.replace, []

    def replace_then_die(src, dst):
        real_replace(src, dst)
        moved.append(dst)
        if len(moved) == 4:  # part-way through the sets: .shp and .shx new, the .dbf still old
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace_then_die
    write_record(sys.argv[1], record("second", 2))
""")


def test_a_kill_while_sets_are_swapped_is_finished_by_the_next_write(tmp_path):
    out = str(tmp_path / "site.shp")
    write_record(out, record("first", 1))
    script = KILL_MID_SWAP.format(root=ROOT, tests=os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script, out], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert os.path.exists(tmp_path / ".site.earthgptx" / "journal.json")
    write_record(out, record("third", 3))
    assert [a.properties["answer"] for a in read_layer(out, "answers")] == ["first", "second", "third"]
    for layer in ("prompts_polygon", "answers", "detections"):
        with fiona.open(str(tmp_path / f"site_{layer}.shp")) as src:
            assert len(list(src)) == 3
    assert not os.path.exists(tmp_path / ".site.earthgptx" / "journal.json")
    assert [f for f in os.listdir(tmp_path / ".site.earthgptx") if f.startswith("staging-")] == []


def test_stale_temporary_folders_of_killed_writers_are_removed(tmp_path):
    old, fresh = tmp_path / ".earthgptx-abcd1234", tmp_path / ".earthgptx-wxyz9876"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "site.gpkg").write_bytes(b"copy")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    write_record(str(tmp_path / "site.gpkg"), record("x"))
    assert not old.exists() and fresh.exists()
