"""Profiles: several personal models over one base (issue 16, item 2).

Real SQLite, real llama.cpp, real peft: the LoRA adapters are made by peft (random, not trained:
what matters here is that llama.cpp applies them exactly, not what they learned), written as GGUF
LoRA by the exporter's `lora_to_gguf`, merged by its `merge_adapter`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mipo_local.errors import MipoError
from mipo_local.settings import UserSettings

from .helpers import assert_greedy_agree, assert_one_line_error, greedy_tokens, run_cli

WORK = {
    "survey.md": "# Urchin survey\n\nSaturday weekend schedule: the Rognaskjær dive survey, urchin counts on transect B.\n",
    "grant.md": "# Grant report\n\nThe kelp grant report is due Friday; Tromsø lab numbers still missing.\n",
    # a note that shares its subject with both: a note's own text is not its context, another's is
    "dives.md": "# Dive log\n\nRognaskjær urchin counts on transect B for the kelp grant report: Tromsø lab numbers.\n",
}
HOME = {
    "baking.md": "# Sourdough\n\nSaturday weekend schedule: feed Bjørn the starter at eight, bake two loaves for Karin.\n",
    "bike.md": "# Bike\n\nGrønnsak needs a new chain before the spring commute.\n",
}
QUESTION = "What is on my Saturday weekend schedule?"


def _notes(root: Path, files: dict) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def two_sources(tmp_path) -> tuple[Path, Path]:
    """A work and a home notes folder, imported into the test's workspace."""
    from mipo_local.context import import_paths

    work, home = _notes(tmp_path / "work", WORK), _notes(tmp_path / "home", HOME)
    import_paths([work, home], settings=UserSettings())
    return work.resolve(), home.resolve()


# --------------------------------------------------------------------------- definitions (no model)

def test_create_list_remove_and_errors(two_sources):
    from mipo_local.chat.profiles import create_profile, list_profiles, profile_sources, remove_profile
    from mipo_local.context import ContextStore

    work, home = two_sources
    created = create_profile("work", [str(work)])
    assert [s.path for s in created.sources] == [str(work)]
    create_profile("home", [str(home)])
    assert [p.name for p in list_profiles()] == ["home", "work"]
    with pytest.raises(MipoError, match="there is a profile 'work' already"):
        create_profile("work", [str(home)])
    with pytest.raises(MipoError, match="no imported source"):
        create_profile("mail", ["/nowhere/mail.mbox"])
    with pytest.raises(MipoError, match="not a profile name"):
        create_profile("../x", [str(work)])
    with pytest.raises(MipoError, match="profile of all your sources"):
        create_profile("default", [str(work)])
    with pytest.raises(MipoError, match="at least one imported source"):
        create_profile("empty", [])
    assert profile_sources(None) is None and profile_sources("default") is None
    with pytest.raises(MipoError, match="no profile 'nope'"):
        profile_sources("nope")
    with ContextStore() as store:          # removing a source takes it out of its profiles
        store.remove_source(str(home))
    with pytest.raises(MipoError, match="no sources left"):
        profile_sources("home")
    remove_profile("home")
    assert [p.name for p in list_profiles()] == ["work"]
    with pytest.raises(MipoError, match="no profile 'home'"):
        remove_profile("home")


def test_a_profile_view_of_the_store_sees_only_its_sources(two_sources):
    from mipo_local.context import ContextStore
    from mipo_local.pairs.examples import build_examples

    work, home = two_sources
    with ContextStore() as store:
        ids = {s.path: s.id for s in store.sources()}
        everything = store.counts()
        everywhere = {h.title for h in store.search(QUESTION, 8)}
        all_fp = store.fingerprint()
        all_run = store.pair_run("k", {}, {})
        assert len(store.document_versions()) == 5
    assert {"Urchin survey", "Sourdough"} <= everywhere
    with ContextStore(sources=[ids[str(work)]]) as store:
        found = {h.title for h in store.search(QUESTION, 8)}
        assert "Urchin survey" in found and found <= {"Urchin survey", "Grant report", "Dive log"}
        counts = store.counts()
        assert counts["sources"] == 1 and counts["notes"] == 3 and 0 < counts["chunks"] < everything["chunks"]
        assert {d["title"] for d in store.documents(kind="note")} == {"Urchin survey", "Grant report", "Dive log"}
        assert store.fingerprint() != all_fp
        assert store.pair_run("k", {}, {}) != all_run          # a profile's pairs are its own
        assert len(store.document_versions()) == 3             # what is new for its incremental runs
        # none held out and a note its own context: every context the view can give is there to check
        examples = build_examples(store, max_examples=50, heldout_fraction=0.0, own_document="include")
    contexts = [" ".join(e.context) for e in examples]
    assert any("urchin" in c for c in contexts)
    assert not any("Bjørn" in c or "Grønnsak" in c or "Sourdough" in e.request for c, e in zip(contexts, examples))


def test_cli_profile_errors_are_one_line(two_sources, mipo_home):
    work, _ = two_sources
    assert_one_line_error(run_cli(["profile", "--create", "work", "--source", "/nowhere"], mipo_home),
                          "no imported source")
    ok = run_cli(["profile", "--create", "work", "--source", str(work)], mipo_home)
    assert ok.returncode == 0, ok.stderr
    listed = run_cli(["profile"], mipo_home)
    assert "work" in listed.stdout and str(work) in listed.stdout and "run --profile work" in listed.stdout
    assert_one_line_error(run_cli(["chat", "--profile", "work", "-m", "hi"], mipo_home),
                          "profile 'work' has no personal model yet", "run --profile work")
    assert_one_line_error(run_cli(["run", "--profile", "nope"], mipo_home), "no profile 'nope'")
    assert_one_line_error(run_cli(["serve", "--profile", "work", "--base"], mipo_home), "--base and --profile")
    assert_one_line_error(run_cli(["profile", "--remove", "nope"], mipo_home), "no profile 'nope'")


def test_run_with_a_profile_makes_pairs_from_its_sources_only(two_sources, sampling_model, smol_checkpoint):
    """`run --profile work`, up to the pairs (tiny settings): every pair's context is the work
    notes', the run is the profile's (its state says so) and its pair run is the profile's own."""
    from mipo_local.chat.profiles import create_profile
    from mipo_local.context import ContextStore
    from mipo_local.pairs.settings import PairSettings
    from mipo_local.pipeline import RunSettings, load_state, run_pipeline

    work, _ = two_sources
    create_profile("work", [str(work)])
    settings = RunSettings(pairs=PairSettings(examples=3, heldout_pairs=0, candidates=1, min_context_mi=None,
                                              max_new_tokens=12, n_parallel=4))
    result = run_pipeline(settings=settings, until="pairs", profile="work")
    state = load_state(result.run_dir)
    assert state["profile"] == "work" and state["sources"] and state["stages"]["pairs"]["status"] == "done"
    with ContextStore() as store:
        rows = store.pairs(state["stages"]["pairs"]["pair_run"])
    assert rows
    contexts = " ".join(r["context"] for r in rows)
    assert "urchin" in contexts.lower() or "kelp" in contexts.lower()
    assert "Bjørn" not in contexts and "Grønnsak" not in contexts


# ------------------------------------------------------------------------- models (llama.cpp, peft)

def _random_adapter(checkpoint: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter as peft saves it, with random (nonzero) B matrices: it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, smol_checkpoint, smol_f16, bundled_gguf) -> dict:
    """Two peft LoRA adapters as GGUF LoRA files, and the first one merged and exported as F16 GGUF."""
    from mipo_local.modelio import checkpoint_to_gguf
    from mipo_local.train.merge import lora_to_gguf, merge_adapter

    root = tmp_path_factory.mktemp("profile-adapters")
    out = {}
    for i, name in enumerate(("work", "home")):
        peft_dir = _random_adapter(smol_checkpoint, root / f"{name}-peft", seed=i)
        out[name] = lora_to_gguf(peft_dir, bundled_gguf, root / f"{name}.adapter.gguf")
        if name == "work":
            merged = merge_adapter(smol_checkpoint, peft_dir, root / "work-merged")
            out["work_merged_f16"] = checkpoint_to_gguf(merged, root / "work-merged.f16.gguf", base_gguf=bundled_gguf)
    return out


PROMPTS = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in
           ("What should I bake this weekend?", "How dense were the urchins at the survey site?")]


def _greedy(llm, prompt: str, n: int = 20) -> list[int]:
    return greedy_tokens(llm, prompt, n)[1]


def test_base_with_adapter_switched_in_equals_the_merged_model(adapters, smol_f16):
    """F16 base + the adapter applied at run time (no reload) gives the merged model's tokens at
    temperature 0, up to a near-tie (two computations that round differently: `assert_greedy_agree`):
    the F16 merged export, since a quantized merge rounds the merged weights (not the adapter) further.
    Switching away and back gives the same tokens again, exactly (the same computation; the KV cache
    of the other adapter is not reused)."""
    from mipo_local.chat.session import ChatModel
    from mipo_local.inference.llama_runtime import llama_model

    with llama_model(adapters["work_merged_f16"], n_ctx=256, flash_attn=True) as merged:
        expected = [_greedy(merged, p) for p in PROMPTS]
    with llama_model(smol_f16, n_ctx=256, flash_attn=True, lora_path=str(adapters["home"])) as loaded:
        expected_home = [_greedy(loaded, p) for p in PROMPTS]       # the other adapter, given at load
    model = ChatModel(smol_f16, n_ctx=256)
    try:
        plain = [_greedy(model.llm, p) for p in PROMPTS]
        model.use_adapter(adapters["work"])
        switched = [_greedy(model.llm, p) for p in PROMPTS]
        for p, ours, theirs in zip(PROMPTS, switched, expected):
            assert_greedy_agree(model.llm, model.llm.tokenize(p.encode(), add_bos=False, special=True), ours, theirs)
        assert plain != switched, "the adapter changed nothing: the test would not notice one that is ignored"
        model.use_adapter(adapters["home"])
        other = [_greedy(model.llm, p) for p in PROMPTS]
        assert other == expected_home
        model.use_adapter(adapters["work"])
        assert [_greedy(model.llm, p) for p in PROMPTS] == switched
        model.use_adapter(None)
        assert [_greedy(model.llm, p) for p in PROMPTS] == plain
    finally:
        model.close()


def _fake_run(root: Path, adapter: Path, base: Path) -> Path:
    """A run folder as a run leaves it, for what chat reads: state (its base), adapter.gguf and the
    personal model (here the base's file: chat on a profile loads the base and the adapter)."""
    import os
    import shutil

    root.mkdir(parents=True)
    shutil.copy(adapter, root / "adapter.gguf")
    (root / "state.json").write_text(json.dumps({"base": str(base), "finished": True}))
    try:
        os.link(base, root / "personal.Q4_1.gguf")
    except OSError:
        shutil.copy(base, root / "personal.Q4_1.gguf")
    return root / "personal.Q4_1.gguf"


@pytest.fixture
def profiles_with_models(two_sources, adapters, bundled_gguf, mipo_home):
    from mipo_local.chat.active_model import activate
    from mipo_local.chat.profiles import create_profile

    work, home = two_sources
    for name, source in (("work", work), ("home", home)):
        create_profile(name, [str(source)])
        activate(_fake_run(mipo_home / "runs" / f"run-{name}", adapters[name], bundled_gguf), smoke=False, profile=name)


def test_switching_profiles_mid_conversation_changes_answers_and_retrieval(profiles_with_models):
    import dataclasses

    from mipo_local.chat.profiles import profile_model
    from mipo_local.chat.session import ChatSession, Conversation

    work, home = profile_model("work"), profile_model("home")
    assert work.base == home.base and work.adapter != home.adapter
    options = dict(temperature=0.0, max_tokens=24, save=False, n_ctx=1024)
    with ChatSession(work, **options) as session:
        first = session.ask(QUESTION)
        assert {s.title for s in session.last_snippets} == {"Urchin survey"}
        llm = session.llm
        seconds = session.use_profile(home)
        assert session.llm is llm, "the base was loaded again"
        assert seconds < 1.0
        second = session.ask(QUESTION)
        assert {s.title for s in session.last_snippets} == {"Sourdough"}
        assert second != first
        so_far = dataclasses.replace(session.conversation, messages=session.conversation.messages[:2], context=[],
                                     context_turn=None)
    # the same turn in a session opened on the home profile from the start: the same answer
    with ChatSession(home, conversation=Conversation(**dataclasses.asdict(so_far)), **options) as fresh:
        assert fresh.ask(QUESTION) == second


def test_serve_takes_a_profile(profiles_with_models):
    from mipo_local.chat.profiles import profile_model
    from mipo_local.chat.server import Server

    target = profile_model("home")
    with Server(target, port=0) as server:
        assert server.model_id == "mipo-local/run-home"
        assert server.model.adapter == target.adapter.resolve() and server.model.sources == target.sources
        assert {s.title for s in server.model.retrieve(QUESTION)[1]} == {"Sourdough"}


def test_the_app_chat_tab_picks_a_profile(profiles_with_models):
    """The Chat tab's picker shows the profiles; the first message is answered with the chosen
    one's adapter and sources; choosing another mid-conversation switches the adapter on the open
    session (a notification says how long it took)."""
    import asyncio

    from .helpers import noted_app, save_onboarded, set_value, settle

    save_onboarded(["ada@lindqvist.example"])

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("f4")
            s = app.screen
            picker = s.query_one("#chat-profile")
            assert picker.display and [str(o[0]) for o in picker._options] == ["all sources", "profile: home", "profile: work"]
            await set_value(pilot, "#chat-profile", "work")
            await set_value(pilot, "#chat-input", QUESTION)
            s.query_one("#chat-input").focus()
            await pilot.press("enter")
            await settle(pilot)
            assert "Urchin survey" in str(s.query_one("#snippets").render())
            assert s.query(".msg-model").last().source.strip()
            session = s.query_one("#chat").sessions["personal"]
            llm = session.llm
            await set_value(pilot, "#chat-profile", "home")
            await settle(pilot)
            assert any(n.startswith("profile home: switched in") for n in app.notes), app.notes
            assert session.profile.label == "home" and session.llm is llm
            assert {s.title for s in session.model.retrieve(QUESTION)[1]} == {"Sourdough"}

    asyncio.run(run())


def test_the_app_personalize_tab_runs_for_a_chosen_profile(two_sources, sampling_model, smol_checkpoint, monkeypatch):
    """The Personalize tab's picker shows the profiles (hidden while there are none); Make pairs with
    one chosen makes the profile's run: its state names the profile and its pairs come from its
    sources only (tiny settings)."""
    import asyncio

    from mipo_local.chat.profiles import create_profile
    from mipo_local.context import ContextStore
    from mipo_local.pairs.settings import PairSettings
    from mipo_local.pipeline import RunSettings, list_runs, load_state

    from .helpers import app_runs_start_from, click, noted_app, save_onboarded, set_value, settle

    work, _ = two_sources
    save_onboarded()
    app_runs_start_from(monkeypatch, RunSettings(pairs=PairSettings(
        examples=3, heldout_pairs=0, candidates=1, min_context_mi=None, max_new_tokens=12, n_parallel=4)))

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            pane = app.screen.query_one("PersonalizePane")
            assert not pane.query_one("#run-profile").display          # no profiles yet
            create_profile("work", [str(work)])
            pane.refresh_profiles()
            await pilot.pause()
            picker = pane.query_one("#run-profile")
            assert picker.display and [str(o[0]) for o in picker._options] == ["all sources", "profile: work"]
            await set_value(pilot, "#run-profile", "work")
            for selector, value in (("#examples", 3), ("#max-new-tokens", 12)):
                await set_value(pilot, selector, value)
            await click(pilot, "#pairs-only")
            await settle(pilot)
            await settle(pilot)
            assert "pairs are ready" in str(pane.query_one("#stage-detail").render()), app.notes

    asyncio.run(run())
    (run_dir,) = list_runs()
    state = load_state(run_dir)
    assert state["profile"] == "work" and state["stages"]["pairs"]["status"] == "done"
    with ContextStore() as store:
        contexts = " ".join(r["context"] for r in store.pairs(state["stages"]["pairs"]["pair_run"]))
    assert contexts and "Bjørn" not in contexts and "Grønnsak" not in contexts
