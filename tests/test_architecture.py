"""The shape of the package: two layers (the library never imports the experiments), no module reaching into
another's private names, short modules, and a loss registry that the training step reads instead of testing
names: a new loss is one function and one entry."""

import ast
from pathlib import Path

import pytest
import torch

import minidpo
from minidpo import losses
from minidpo.batching import collate_preferences
from minidpo.train import DPOConfig, DPOStep

PACKAGE = Path(minidpo.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
LIBRARY = [p for p in MODULES if "experiments" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"]


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_the_library_never_imports_the_experiments():
    assert len(LIBRARY) >= 15
    offenders = []
    for path in LIBRARY:
        for node in _imports(path):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names += [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            if any("experiments" in n.split(".") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"library modules importing minidpo.experiments: {offenders}"


def test_no_module_imports_another_modules_private_name():
    offenders = [f"{p.relative_to(PACKAGE)}:{n.lineno} {a.name}" for p in MODULES for n in _imports(p)
                 if isinstance(n, ast.ImportFrom) for a in n.names if a.name.startswith("_") and a.name != "__version__"]
    assert not offenders, offenders


def test_modules_are_short_enough_to_read_in_one_sitting():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines: {long}"


def test_lines_are_at_most_120_characters():
    long = [f"{p.relative_to(PACKAGE.parent).as_posix()}:{i} ({len(line)})" for p in MODULES
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, f"lines over 120 characters: {long}"


def _batch():
    ex = [{"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5, 0], "rejected_ids": [6, 0]},
          {"prompt_ids": [7, 8], "chosen_ids": [9, 0], "rejected_ids": [10, 11, 12, 0]}]
    batch = collate_preferences(ex, pad_token_id=0)
    batch["ref_chosen_logps"], batch["ref_rejected_logps"] = torch.tensor([-3.0, -2.0]), torch.tensor([-2.5, -4.0])
    return batch


@pytest.fixture
def registry():
    """The loss registry, restored after the test (registering mutates the one dict every module reads)."""
    before = dict(losses.LOSSES)
    yield losses.LOSSES
    losses.LOSSES.clear()
    losses.LOSSES.update(before)


def test_a_new_loss_is_one_registered_function(registry):
    """Register a loss the step has never heard of: DPOStep computes it from the registry alone, with the
    reference log-probs it asked for and the lengths it said it uses."""
    from minidpo.models import tiny_gpt2
    from minidpo.logprobs import model_sequence_logprobs

    seen = {}

    @losses.register_loss("squared_margin", "a test loss", uses_lengths=True)
    def squared_margin(lp, beta):
        seen["lengths"] = (lp.chosen_lengths.tolist(), lp.rejected_lengths.tolist())
        chosen, rejected = lp.logratios()
        return (beta * (chosen - rejected) - 1) ** 2

    model = tiny_gpt2(vocab_size=16).eval()
    batch = _batch()
    loss, metrics = DPOStep(DPOConfig(beta=0.5, loss_type="squared_margin"))(model, batch)
    with torch.no_grad():
        c, r = model_sequence_logprobs(model, batch).chunk(2)
    h = (c - batch["ref_chosen_logps"]) - (r - batch["ref_rejected_logps"])
    expected = ((0.5 * h - 1) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)
    assert seen["lengths"] == ([3.0, 2.0], [2.0, 4.0])  # reply tokens, EOS included
    assert metrics["loss"] == pytest.approx(float(expected))


def test_a_reference_free_loss_needs_no_reference(registry):
    from minidpo.models import tiny_gpt2

    losses.register_loss("policy_only", "a test loss", needs_reference=False)(
        lambda lp, beta: -torch.nn.functional.logsigmoid(beta * (lp.chosen - lp.rejected)))
    batch = {k: v for k, v in _batch().items() if not k.startswith("ref_")}
    loss, _ = DPOStep(DPOConfig(loss_type="policy_only"))(tiny_gpt2(vocab_size=16).eval(), batch)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="needs reference log-probs"):
        DPOStep(DPOConfig(loss_type="sigmoid"))(tiny_gpt2(vocab_size=16).eval(), batch)


def test_every_registered_loss_names_its_paper_and_validates():
    for name, spec in losses.LOSSES.items():
        assert spec.paper and callable(spec.fn)
        losses.check_dpo_hyperparameters(0.1, name)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        losses.check_dpo_hyperparameters(0.1, "nope")


STABLE_NAMES = {
    "minidpo.preference": ["bradley_terry_prob", "fit_bradley_terry", "plackett_luce_logprob"],
    "minidpo.kl_optimum": ["kl_constrained_optimum"],
    "minidpo.losses": ["dpo_loss", "LOSSES", "register_loss"],
    "minidpo.logprobs": ["sequence_logprobs", "model_sequence_logprobs", "precompute_reference_logprobs"],
    "minidpo.models": ["tiny_gpt2", "tiny_tokenizer", "load_model"],
    "minidpo.data": ["load_instruction_preferences", "load_hh_rlhf", "load_preference_records", "tokenize_preferences",
                     "tokenize_sft", "collate_preferences", "collate_sft", "PreferenceDataError"],
    "minidpo.evaluate": ["win_rate", "preference_win_rate", "head_to_head_win_rate", "bootstrap_ci"],
    "minidpo.train": ["SFTConfig", "DPOConfig", "train_sft", "train_dpo", "DPOStep"],
    "minidpo.rlhf": ["RewardModel", "train_reward_model", "PPOConfig", "train_ppo", "best_of_n_kl"],
}


@pytest.mark.parametrize("module", sorted(STABLE_NAMES))
def test_stable_public_names(module):
    """The names outside users import keep working wherever their code moved (re-exported where it did)."""
    import importlib

    mod = importlib.import_module(module)
    missing = [name for name in STABLE_NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"
