import torch

from cgfw_paper.buffers import ImagePool, NoBuffer, PoolOptions


def images(start: int, n: int = 1) -> torch.Tensor:
    """Images whose every pixel holds its id, so we can tell which one came back."""
    return (
        torch.arange(start, start + n, dtype=torch.float32)
        .view(n, 1, 1, 1)
        .expand(n, 3, 2, 2)
        .clone()
    )


def ids(batch: torch.Tensor) -> list[int]:
    return [int(x) for x in batch[:, 0, 0, 0]]


def test_pool_returns_new_images_until_full() -> None:
    torch.manual_seed(0)
    pool = ImagePool(PoolOptions(capacity=50))
    for i in range(50):
        assert ids(pool.query(images(i))) == [i]
    assert len(pool.images) == 50


def test_full_pool_returns_a_stored_image_half_the_time_and_keeps_the_new_one() -> None:
    torch.manual_seed(0)
    pool = ImagePool(PoolOptions(capacity=50))
    pool.query(images(0, 50))
    old = 0
    trials = 2000
    for i in range(50, 50 + trials):
        before = set(ids(torch.stack(pool.images)))
        (got,) = ids(pool.query(images(i)))
        after = set(ids(torch.stack(pool.images)))
        if got != i:
            old += 1
            assert got in before and got not in after and i in after  # swapped in place
        else:
            assert after == before
    assert 0.45 < old / trials < 0.55


def test_pool_works_per_image_in_a_batch() -> None:
    torch.manual_seed(0)
    pool = ImagePool(PoolOptions(capacity=3))
    got = ids(pool.query(images(0, 5)))
    assert got[:3] == [0, 1, 2]  # filled one image at a time, within the same batch
    for new, out in zip([3, 4], got[3:], strict=True):
        assert out == new or out in {0, 1, 2}
    assert len(pool.images) == 3


def test_pool_state_round_trip_reproduces_its_choices() -> None:
    torch.manual_seed(1)
    a = ImagePool(PoolOptions(capacity=4))
    a.query(images(0, 4))
    b = ImagePool(PoolOptions(capacity=4))
    b.load_state_dict(a.state_dict())
    for i in range(4, 30):
        assert ids(a.query(images(i))) == ids(b.query(images(i)))


def test_capacity_zero_and_none_pass_through() -> None:
    x = images(7, 3)
    assert torch.equal(ImagePool(PoolOptions(capacity=0)).query(x), x)
    assert torch.equal(NoBuffer(None).query(x), x)  # type: ignore[arg-type]
