from pathlib import Path

import pandas as pd
import pandas.testing as pdt

from ops.demo_data.generate import COLUMNS, STAGES, generate_sites, write_sites


def test_same_seed_gives_the_same_rows() -> None:
    first, second = generate_sites(7), generate_sites(7)
    assert list(first) == list(second)
    for name in first:
        pdt.assert_frame_equal(first[name], second[name])


def test_another_seed_gives_other_rows() -> None:
    a, b = generate_sites(7), generate_sites(8)
    assert any(not a[n].equals(b[n]) for n in a)


def test_sites_differ_from_each_other() -> None:
    tables = list(generate_sites(7).values())
    assert not tables[0]["age"].head(50).equals(tables[1]["age"].head(50))


def test_tables_have_the_demo_shape() -> None:
    tables = generate_sites()
    assert len(tables) == 3
    for frame in tables.values():
        assert tuple(frame.columns) == COLUMNS
        assert 150 <= len(frame) <= 400
        assert set(frame["stage"]) <= set(STAGES)
        assert set(frame["status"]) <= {0, 1}
        assert (frame["time"] > 0).all()
        assert frame["age"].between(18, 100).all()


def test_written_csv_reads_back_as_generated(tmp_path: Path) -> None:
    paths = write_sites(tmp_path, seed=11)
    generated = generate_sites(11)
    assert set(paths) == set(generated)
    for name, path in paths.items():
        back = pd.read_csv(path)
        assert len(back) == len(generated[name])
        assert back["age"].tolist() == generated[name]["age"].tolist()
        assert back["smoking"].isna().sum() == generated[name]["smoking"].isna().sum()
