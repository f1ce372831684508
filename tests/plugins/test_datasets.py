import logging
import shutil
from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import pytest
import torch
from PIL import Image

from cgfw.errors import CgfwError, MissingSplit
from cgfw.plugin.loader import Loaded, load_plugins
from cgfw.recipe import Resolved, load
from cgfw.training.data import KeyBatches, epoch_keys, item_generator, iters_per_epoch
from cgfw.training.loop import build_dataset, fixed_samples
from cgfw_paper.datasets import EmojiOptions, FolderOptions
from cgfw_paper.image_sets import augment, emoji, folder
from tests.conftest import make_folder_dataset


def test_folder_epoch_is_the_larger_domain_and_items_are_cropped(folder_dataset: Path) -> None:
    ds = folder(FolderOptions(root=str(folder_dataset), load_size=36, crop_size=32), "train")
    assert len(ds) == 5  # max(3 A images, 5 B images)
    item = ds[(4, 123)]
    assert item["a"].shape == item["b"].shape == (3, 32, 32)
    assert item["a"].min() >= -1 and item["a"].max() <= 1


def test_folder_cache_decodes_once_and_gives_the_same_items(folder_dataset: Path) -> None:
    opts = dict(root=str(folder_dataset), load_size=48, crop_size=32)
    cached = folder(FolderOptions(**opts, cache=True), "train")
    plain = folder(FolderOptions(**opts), "train")
    assert len(cached.cache) == 3 + 5 and not plain.cache
    for key in [(0, 1), (2, 7), (4, 99)]:
        assert torch.equal(cached[key]["a"], plain[key]["a"])
        assert torch.equal(cached[key]["b"], plain[key]["b"])


def test_folder_items_are_a_function_of_their_key(folder_dataset: Path) -> None:
    ds = folder(FolderOptions(root=str(folder_dataset), load_size=48, crop_size=32), "train")
    assert torch.equal(ds[(1, 99)]["b"], ds[(1, 99)]["b"])
    partners = {ds[(0, seed)]["b"][:, 0, 0].tolist().__repr__() for seed in range(40)}
    assert len(partners) > 1  # B is drawn at random for each A


@pytest.mark.parametrize("counts", [{"trainA": 5, "trainB": 3}, {"trainA": 3, "trainB": 5}])
def test_folder_reads_all_of_a_each_epoch(
    tmp_path: Path, loaded: Loaded, monkeypatch: pytest.MonkeyPatch, counts: dict[str, int]
) -> None:
    """The registered dataset, fed one epoch of the trainer's batches: every A image is read,
    each as often as any other (once when A is the larger domain), whatever B is drawn."""
    root = make_folder_dataset(tmp_path / "h2z", counts)
    options = {"root": str(root), "load_size": 36, "crop_size": 32}
    ds = loaded.registry.get("dataset", "folder").build(options, "train")
    reads: list[Path] = []
    decode = ds.load

    def load(item: Path) -> Image.Image:
        reads.append(item)
        return decode(item)

    monkeypatch.setattr(ds, "load", load)
    batches = KeyBatches(len(ds), batch_size=2, run_seed=0)
    for batch in islice(batches, iters_per_epoch(len(ds), 2)):
        for key in batch:
            ds[key]
    a_reads = Counter(item for item in reads if item in ds.a)
    assert set(a_reads) == set(ds.a) and len(ds.a) == counts["trainA"]
    assert sum(a_reads.values()) == len(ds) == max(counts.values())
    assert max(a_reads.values()) - min(a_reads.values()) <= 1, a_reads


def test_missing_root_says_how_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(CgfwError, match=r"not found.*horse2zebra\.zip.*--set data\.root"):
        folder(FolderOptions(root=str(tmp_path / "horse2zebra")), "train")


def test_missing_train_b_is_named(tmp_path: Path) -> None:
    make_folder_dataset(tmp_path, {"trainA": 1})
    with pytest.raises(CgfwError, match="no trainB/"):
        folder(FolderOptions(root=str(tmp_path)), "train")


def test_crop_larger_than_load_is_refused() -> None:
    with pytest.raises(ValueError, match="crop_size 300 is larger than load_size 286"):
        FolderOptions(root=".", crop_size=300)


def test_emoji_train_domains_are_disjoint_and_test_is_paired() -> None:
    train = emoji(EmojiOptions(), "train")
    test = emoji(EmojiOptions(crop_size=32, load_size=32), "test")
    a_ids = {i for _, i in train.a}
    b_ids = {i for _, i in train.b}
    assert a_ids and b_ids and not a_ids & b_ids
    assert {s for s, _ in train.a} == {"noto"} and {s for s, _ in train.b} == {"twemoji"}
    assert [i for _, i in test.a] == [i for _, i in test.b]
    assert not {i for _, i in test.a} & (a_ids | b_ids)
    item = test[0]
    assert item["a"].shape == (3, 32, 32)
    assert not torch.equal(item["a"], item["b"])  # two styles of one emoji


def test_emoji_is_composited_on_white() -> None:
    item = emoji(EmojiOptions(), "test")[0]
    corners = item["a"][:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.allclose(corners, torch.ones_like(corners))


def test_emoji_paired_training_gives_one_emoji_in_both_styles_with_one_crop() -> None:
    train = emoji(EmojiOptions(paired=True, load_size=40, crop_size=32, flip=True), "train")
    unpaired = emoji(EmojiOptions(), "train")
    assert train.paired and not unpaired.paired
    assert [i for _, i in train.a] == [i for _, i in train.b]
    assert {i for _, i in train.a} == {i for _, i in unpaired.a} | {i for _, i in unpaired.b}
    # The same crop and flip on both sides: each side is what the item seed's draws give.
    for index, seed in ((0, 1), (5, 2), (9, 3)):
        item = train[(index, seed)]
        for side, items in (("a", train.a), ("b", train.b)):
            expected = augment(train.load(items[index]), train.opts, item_generator(seed))
            assert torch.equal(item[side], expected), (index, side)


def test_emoji_paired_on_one_half_gives_exactly_that_halfs_unpaired_images() -> None:
    unpaired = emoji(EmojiOptions(), "train")
    for half, images in (("a", unpaired.a), ("b", unpaired.b)):
        train = emoji(EmojiOptions(paired=half), "train")  # type: ignore[arg-type]
        assert train.paired and [i for _, i in train.a] == [i for _, i in train.b]
        # The unpaired run's images of that side are exactly the paired run's inputs there.
        own = train.a if half == "a" else train.b
        assert own == images


def folder_recipe(loaded: Loaded, tiny_recipe: Path, root: Path) -> Resolved:
    table = f'data={{name="folder", root="{root}", load_size=36, crop_size=32}}'
    return load(str(tiny_recipe), loaded.registry, [table])


def test_no_test_split_samples_training_images_and_says_so(
    tmp_path: Path, loaded: Loaded, tiny_recipe: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_folder_dataset(tmp_path / "h2z", {"trainA": 3, "trainB": 5})
    with pytest.raises(MissingSplit, match="no testA/"):
        folder(FolderOptions(root=str(root)), "test")
    resolved = folder_recipe(loaded, tiny_recipe, root)
    train_set = build_dataset(resolved, "train")
    with caplog.at_level(logging.WARNING, logger="cgfw"):
        a, b = fixed_samples(resolved, train_set, 2)
    (record,) = caplog.records
    assert "no testA/" in record.getMessage() and "training images" in record.getMessage()
    keys = epoch_keys(len(train_set), 12345, 0)[:2]  # type: ignore[arg-type]
    assert torch.equal(a, torch.stack([train_set[k]["a"] for k in keys]))
    assert torch.equal(b, torch.stack([train_set[k]["b"] for k in keys]))


BROKEN_TEST_SPLIT = """
    import cgfw
    from cgfw_paper.datasets import EmojiOptions
    from cgfw_paper.image_sets import emoji

    def broken(opts, split):
        if split == "test":
            raise OSError("stale NFS file handle")
        return emoji(opts, split)

    @cgfw.hookimpl
    def register_datasets(register):
        register("broken_test", broken, EmojiOptions, "emoji whose test split fails to load")
"""


@pytest.mark.parametrize("dataset", ["folder", "plugin"])
def test_a_test_split_that_fails_to_load_is_an_error_not_training_images(
    tmp_path: Path,
    tiny_recipe: Path,
    fake_distribution: Callable[[str, str], Path],
    caplog: pytest.LogCaptureFixture,
    dataset: str,
) -> None:
    if dataset == "folder":  # testA/ is there but holds no images
        root = make_folder_dataset(tmp_path / "h2z", {"trainA": 3, "trainB": 3, "testA": 0})
        loaded = load_plugins()
        resolved = folder_recipe(loaded, tiny_recipe, root)
        reason = "holds no usable images"
    else:
        fake_distribution("cgfw-broken-test", BROKEN_TEST_SPLIT)
        loaded = load_plugins()
        resolved = load(str(tiny_recipe), loaded.registry, ["data.name=broken_test"])
        reason = "failed to load the test split: OSError: stale NFS file handle"
    train_set = build_dataset(resolved, "train")
    with caplog.at_level(logging.WARNING, logger="cgfw"), pytest.raises(CgfwError, match=reason):
        fixed_samples(resolved, train_set, 2)
    assert not caplog.records


def test_folder_test_pairs_scores_aligned_scenes_and_names_a_mismatch(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", {"trainA": 2, "trainB": 2, "testA": 3, "testB": 3})
    opts = {"root": str(root), "load_size": 32, "crop_size": 32}
    assert not folder(FolderOptions(**opts), "test").paired  # the authors' test sets are not
    aligned = folder(FolderOptions(**opts, test_pairs=True), "test")
    assert aligned.paired and [p.name for p in aligned.a] == [p.name for p in aligned.b]
    (root / "testB" / "002.png").rename(root / "testB" / "009.png")
    with pytest.raises(CgfwError, match=r"test_pairs.*002.png, 009.png"):
        folder(FolderOptions(**opts, test_pairs=True), "test")


def test_folder_pairs_trains_on_aligned_scenes_with_the_same_crop(tmp_path: Path) -> None:
    """pix2pix's aligned data: item i's B is the B image of A's name, cropped and flipped alike
    (here B is A's image: the two tensors are equal)."""
    root = make_folder_dataset(tmp_path / "d", {"trainA": 4, "testA": 2}, size=(40, 48))
    shutil.copytree(root / "trainA", root / "trainB")
    shutil.copytree(root / "testA", root / "testB")
    opts = FolderOptions(root=str(root), load_size=36, crop_size=32, flip=True, pairs=True)
    train = folder(opts, "train")
    assert train.paired and folder(opts, "test").paired
    for index in range(4):
        item = train[(index, 7)]
        assert torch.equal(item["a"], item["b"])
    unpaired = folder(FolderOptions(**{**opts.model_dump(), "pairs": False}), "train")
    assert not unpaired.paired
    (root / "trainB" / "001.png").rename(root / "trainB" / "007.png")
    with pytest.raises(CgfwError, match=r"data.pairs: .*trainA/ and trainB/"):
        folder(opts, "train")


def test_a_corrupt_image_in_aligned_pairs_stops_instead_of_shifting_the_pairs(
    tmp_path: Path,
) -> None:
    root = make_folder_dataset(tmp_path / "d", {"trainA": 2, "trainB": 2, "testA": 3, "testB": 3})
    png = root / "testB" / "001.png"
    png.write_bytes(png.read_bytes()[:80])  # a header that lists, pixels that do not decode
    opts = FolderOptions(root=str(root), load_size=32, crop_size=32, test_pairs=True)
    with pytest.raises(CgfwError, match=r"001.png.*cannot be skipped"):
        folder(opts, "test")[1]


def test_the_cache_skips_a_corrupt_image_naming_it_but_not_in_aligned_pairs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_folder_dataset(tmp_path / "d", {"trainA": 3, "trainB": 2, "testA": 2, "testB": 2})
    for png in (root / "trainA" / "001.png", root / "testB" / "001.png"):
        png.write_bytes(png.read_bytes()[:80])  # a header that lists, pixels that do not decode
    train = folder(FolderOptions(root=str(root), load_size=36, crop_size=32, cache=True), "train")
    assert f"skipping {root / 'trainA' / '001.png'}: cannot be decoded" in caplog.text
    assert len(train.cache) == 2 + 2
    assert all(train[(i, i)]["a"].shape == (3, 32, 32) for i in range(len(train)))
    opts = FolderOptions(root=str(root), load_size=32, crop_size=32, test_pairs=True, cache=True)
    with pytest.raises(CgfwError, match=r"001.png.*cannot be skipped"):
        folder(opts, "test")
