import torch

from experiments.data import Batches, RegressionDataModule
from experiments.datasets import builtin


def test_tables_carry_their_names_and_the_tutorials_values():
    crops = builtin("crops")
    assert crops.features.shape == (15, 3) and crops.targets.shape == (15, 2)
    assert crops.feature_names == ["temp", "rainfall", "humidity"]
    assert crops.target_names == ["apples", "oranges"]
    assert torch.equal(builtin("crops5").features, crops.features[:5])
    toy = builtin("toy")
    assert (toy.feature_names, toy.target_names, len(toy)) == (["x"], ["y"], 15)


def test_tutorial000_table_has_rainfall_145_in_region_c():
    table, crops5 = builtin("crops5_tutorial000"), builtin("crops5")
    assert table.features[2].tolist() == [87, 145, 58]
    assert crops5.features[2].tolist() == [87, 134, 58]
    assert torch.equal(table.targets, crops5.targets)


def _epoch(batches):
    xs, ys = zip(*[(x.clone(), y.clone()) for x, y in batches])
    return torch.cat(xs), torch.cat(ys), [len(x) for x in xs]


def test_batches_serve_every_row_once_per_epoch_in_slices():
    x = torch.arange(10.0).reshape(10, 1)
    y = 2 * x
    batches = Batches(x, y, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 4
    xs, ys, sizes = _epoch(batches)
    assert sizes == [3, 3, 3, 1]
    assert sorted(xs[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(ys, 2 * xs)  # rows stay paired with their targets


def test_shuffling_is_new_each_epoch_and_seeded():
    x = torch.arange(50.0).reshape(50, 1)

    def two_epochs(seed):
        batches = Batches(x, x, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return _epoch(batches)[0], _epoch(batches)[0]

    first, second = two_epochs(1)
    assert not torch.equal(first, second)
    assert torch.equal(first, two_epochs(1)[0])
    assert not torch.equal(first, two_epochs(2)[0])


def test_unshuffled_full_batch_is_the_data_itself():
    data = RegressionDataModule.from_builtin("crops")
    data.setup("fit")
    (x, y), = list(data.train_dataloader())
    assert torch.equal(x, data.table.features) and torch.equal(y, data.table.targets)
