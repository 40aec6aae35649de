"""Zero-shot text baselines (embedding, bm25): item text from the catalog, users from their
shown history, no interactions needed; embeddings cached by catalog text + model."""

from __future__ import annotations

import numpy as np
import pytest

from recllm.baselines import get_baseline, training_data
from recllm.baselines.itemtext import item_texts
from recllm.data.schema import UserCase
from recllm.errors import RecllmError

WORDS = ["action", "crime", "drama", "comedy", "animation", "adventure", "sci-fi", "thriller"]


@pytest.fixture
def fake_encoder(monkeypatch):
    """Bag of genre words, unit norm: a stand-in for the sentence encoder (no model load)."""
    import recllm.baselines.embedding as emb
    calls = []

    def encode(texts, model, device, batch_size):
        calls.append(len(texts))
        v = np.array([[t.lower().count(w) for w in WORDS] for t in texts], np.float32) + 1e-3
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    monkeypatch.setattr(emb, "encode", encode)
    return calls


def case(history, target="1"):
    return UserCase("u", tuple(history), (1.0,) * len(history), tuple(range(len(history))), target, 99)


def test_item_text_has_title_year_and_genres(tiny_dataset):
    train = training_data(tiny_dataset, [])
    text = dict(zip(train.items.tolist(), item_texts(train.items, train.catalog)))
    assert text["7"] == "Star Wars (1977). Genres: Action, Adventure, Sci-Fi."


def test_embedding_ranks_by_cosine_to_the_mean_history(tiny_dataset, fake_encoder):
    train = training_data(tiny_dataset, [])
    model = get_baseline("embedding", train)
    top = model.rank([case(["3", "4"])], 2)[0]      # crime thrillers -> the other crime thrillers
    assert set(top) == {"8", "10"} or top[0] == "8"
    assert model.fit_info["cached"] is False and fake_encoder == [train.n_items]


def test_embeddings_are_cached_by_catalog_text_and_model(tiny_dataset, fake_encoder):
    train = training_data(tiny_dataset, [])
    a = get_baseline("embedding", train)
    b = get_baseline("embedding", training_data(tiny_dataset, []))
    assert b.fit_info["cached"] is True and fake_encoder == [train.n_items]
    assert np.array_equal(a.item_vectors, b.item_vectors)


def test_recency_decay_weights_recent_items(tiny_dataset, fake_encoder):
    train = training_data(tiny_dataset, [])
    hist = ["1", "2", "3", "4", "11", "8"]          # ends with crime / drama
    plain = get_baseline("embedding", train, options={"recency_decay": 1.0}).scores([case(hist)])
    recent = get_baseline("embedding", train, options={"recency_decay": 0.1}).scores([case(hist)])
    drama = train.index["6"]                         # pure drama: closer to the recent items
    assert recent[0, drama] > plain[0, drama]


def test_embedding_bad_model_folder_is_named(tiny_dataset):
    with pytest.raises(RecllmError, match="no sentence-transformers model folder"):
        get_baseline("embedding", training_data(tiny_dataset, []), options={"model": "/nope"})


def test_bm25_matches_history_words(tiny_dataset):
    train = training_data(tiny_dataset, [])
    model = get_baseline("bm25", train)
    top = model.rank([case(["1"])], 1)[0]            # Toy Story: Children's / Comedy / Animation
    assert top == ["2"]                              # Jumanji shares "Children's"
    assert get_baseline("bm25", train).rank([case([])], 1)[0] == [train.items[np.argmax(train.counts)]]


def test_bm25_unknown_option_is_named(tiny_dataset):
    with pytest.raises(RecllmError, match="unknown option 'k'.*did you mean 'k1'"):
        get_baseline("bm25", training_data(tiny_dataset, []), options={"k": 1})

