import torch

from experiments.batches import EpochBatches
from experiments.datamodule import RegressionDataModule
from experiments.evaluation import spread_rows
from experiments.tables import builtin_table


def test_tables_carry_their_names_and_the_tutorials_values():
    crops = builtin_table("crops")
    assert crops.features.shape == (15, 3) and crops.targets.shape == (15, 2)
    assert crops.feature_names == ["temp", "rainfall", "humidity"]
    assert crops.target_names == ["apples", "oranges"]
    assert torch.equal(builtin_table("crops5").features, crops.features[:5])
    toy = builtin_table("toy")
    assert (toy.feature_names, toy.target_names, len(toy)) == (["x"], ["y"], 15)


def test_tutorial000_table_has_rainfall_145_in_region_c():
    table, crops5 = builtin_table("crops5_tutorial000"), builtin_table("crops5")
    assert table.features[2].tolist() == [87, 145, 58]
    assert crops5.features[2].tolist() == [87, 134, 58]
    assert torch.equal(table.targets, crops5.targets)


def _epoch(batches):
    """One epoch's mini-batches, copied as a training step would use them: before the next is asked for."""
    xs, ys = zip(*[(x.clone(), y.clone()) for bundle in batches for x, y in bundle])
    return torch.cat(xs), torch.cat(ys), [len(x) for x in xs]


def test_batches_serve_every_row_once_per_epoch_in_slices():
    x = torch.arange(10.0).reshape(10, 1)
    y = 2 * x
    batches = EpochBatches(
        torch.cat([x, y], 1), 1, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert batches.steps_per_epoch == 4 and len(batches) == 1  # one bundle of four mini-batches
    xs, ys, sizes = _epoch(batches)
    assert sizes == [3, 3, 3, 1]
    assert sorted(xs[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(ys, 2 * xs)  # rows stay paired with their targets


def test_shuffling_is_new_each_epoch_and_seeded():
    x = torch.arange(50.0).reshape(50, 1)

    def two_epochs(seed):
        batches = EpochBatches(
            torch.cat([x, x], 1), 1, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        return _epoch(batches)[0], _epoch(batches)[0]

    first, second = two_epochs(1)
    assert not torch.equal(first, second)
    assert torch.equal(first, two_epochs(1)[0])
    assert not torch.equal(first, two_epochs(2)[0])


def test_bundles_hold_up_to_steps_per_bundle_mini_batches():
    x = torch.arange(10.0).reshape(10, 1)
    batches = EpochBatches(
        torch.cat([x, x], 1), 1, batch_size=2, shuffle=False, generator=torch.Generator(), steps_per_bundle=2
    )
    bundles = [[b.tolist() for b, _ in bundle] for bundle in batches]
    assert len(batches) == 3 and [len(bundle) for bundle in bundles] == [2, 2, 1]
    assert sum(bundles, []) == [[[0.0], [1.0]], [[2.0], [3.0]], [[4.0], [5.0]], [[6.0], [7.0]], [[8.0], [9.0]]]


def test_shuffled_mini_batches_reuse_one_buffer_and_never_copy_the_data():
    rows = torch.arange(150.0).reshape(50, 3)
    batches = EpochBatches(rows, 2, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    pointers = {features.data_ptr() for bundle in batches for features, _ in bundle}
    assert len(pointers) == 1 and pointers != {rows.data_ptr()}


def test_unshuffled_full_batch_is_the_data_itself():
    data = RegressionDataModule.from_builtin("crops")
    data.setup("fit")
    (bundle,) = list(data.train_dataloader())
    ((x, y),) = list(bundle)
    crops = builtin_table("crops")
    assert torch.equal(x, crops.features) and torch.equal(y, crops.targets)
    assert x.data_ptr() == data.train_rows.data_ptr()  # a view, not a copy


def test_the_rows_kept_for_the_picture_span_the_data_at_any_size():
    assert spread_rows(15, 2000).tolist() == list(range(15))
    assert spread_rows(1, 2000).tolist() == [0]
    many = spread_rows(20_000_000, 2000)
    assert len(many) == 2000 and many[0] == 0 and many[-1] == 19_999_999 and bool((many.diff() > 0).all())
