"""Eligibility rules, FA*IR fairness properties, and the ranking pipeline on real consortia."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher.eligibility import Member, check
from matcher.fairness import FairConfig, fair_rerank, minimum_table, satisfies
from matcher.ranker import FittedRanker, RankerConfig
from matcher.ranking import FeatureConfig, History, ScoreConfig, fair_top, features, rank, score, walk
from matcher.vocab import UnknownCode


def m(i: int, country: str, sector: str = "vet") -> Member:
    return Member(i, country, sector)


def test_cooperation_partnership_rules() -> None:
    two = check([m(1, "DE"), m(2, "FR")], "cooperation")
    assert not two.eligible and two.organisations_needed == 1 and two.countries_needed == 1
    assert any("1 more organisation from" in x for x in two.missing)
    assert check([m(1, "DE"), m(2, "FR"), m(3, "NO")], "cooperation").eligible
    same = check([m(1, "DE"), m(2, "DE"), m(3, "FR")], "cooperation")
    assert not same.eligible and same.countries_needed == 1 and same.organisations_needed == 0
    partner_country = check([m(1, "DE"), m(2, "FR"), m(3, "GB")], "cooperation", 2026)  # GB: not associated in 2026
    assert not partner_country.eligible
    assert any("United Kingdom is not associated" in n and "does not count" in n for n in partner_country.notes)
    assert check([m(1, "DE"), m(2, "FR"), m(3, "GB"), m(4, "TR")], "cooperation", 2026).eligible
    assert check([m(1, "DE"), m(2, "FR"), m(3, "GB")], "cooperation", 2027).eligible  # associated from 2027


def test_small_scale_and_school_rules() -> None:
    assert check([m(1, "DE"), m(2, "FR")], "small-scale").eligible
    assert not check([m(1, "DE"), m(2, "DE")], "small-scale").eligible
    assert not check([m(1, "DE")], "small-scale").eligible
    schools = check([m(1, "DE", "school"), m(2, "FR", "school")], "school", 2019)
    assert schools.eligible
    mixed = check([m(1, "DE", "school"), m(2, "FR", "vet")], "school", 2019)
    assert not mixed.eligible and any("schools" in x for x in mixed.missing)
    with pytest.raises(UnknownCode, match="unknown action"):
        check([], "mobility")


def test_minimum_table_is_the_binomial_quantile() -> None:
    assert minimum_table(10, 0.3, 0.5) == (0, 1, 1, 1, 1, 2, 2, 2, 3, 3)
    assert minimum_table(10, 0.3, 0.4) == (0, 0, 1, 1, 1, 1, 2, 2, 2, 3)
    assert minimum_table(5, 0.0, 0.1) == (0, 0, 0, 0, 0)
    assert all(a <= b for a, b in zip(minimum_table(50, 0.4, 0.1), minimum_table(50, 0.4, 0.1)[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(
    flags=st.lists(st.booleans(), min_size=0, max_size=60),
    k=st.integers(1, 40),
    share=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.8]),
    alpha=st.sampled_from([0.05, 0.1, 0.5]),
)
def test_fair_rerank_properties(flags: list[bool], k: int, share: float, alpha: float) -> None:
    items = list(range(len(flags)))  # already in score order
    config = FairConfig(share, alpha)
    out = fair_rerank(items, flags, k, config)
    assert len(out) == min(k, len(items)) and len(set(out)) == len(out) and set(out) <= set(items)
    assert satisfies([flags[i] for i in out], config, available=sum(flags))
    for group in (True, False):  # score order kept within each group
        chosen = [i for i in out if flags[i] == group]
        assert chosen == sorted(chosen)
    if share == 0:
        assert out == items[:k]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(5, 80), k=st.integers(1, 20), seed=st.integers(0, 1000))
def test_fair_top_never_shows_excluded_or_chosen(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    newcomer = rng.random(n) < 0.3
    excluded = set(rng.choice(n, size=n // 4, replace=False).tolist())
    pool = np.array([i for i in range(n) if i not in excluded], dtype=np.int64)
    if len(pool) == 0:
        return
    ranked = rank(scores, pool, k)
    out = fair_top(ranked, newcomer, k, FairConfig(0.3, 0.5), scores, pool)
    assert not set(out.tolist()) & excluded
    assert len(set(out.tolist())) == len(out) == min(k, len(pool))
    assert satisfies(newcomer[out].tolist(), FairConfig(0.3, 0.5), available=int(newcomer[pool].sum()))


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(5, 300),
    k=st.integers(1, 20),
    head=st.integers(1, 60),
    newcomer_share=st.sampled_from([0.0, 0.02, 0.3, 0.9]),
    levels=st.sampled_from([0, 3]),
    share=st.sampled_from([0.3, 0.8]),
    seed=st.integers(0, 1000),
)
def test_fair_top_reads_newcomers_from_the_head_or_their_positions_as_from_the_pool(
    n: int, k: int, head: int, newcomer_share: float, levels: int, share: float, seed: int
) -> None:
    """The newcomers drawn from the ranked head (when it holds k of them) or from the matcher's sorted
    newcomer positions are those drawn from the whole pool: the same list as the plain formula."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, n).astype(float) if levels else rng.random(n)  # ties when levels
    newcomer = rng.random(n) < newcomer_share
    pool = np.flatnonzero(rng.random(n) < 0.8)
    if len(pool) == 0:
        return
    ranked = rank(scores, pool, max(k, head))
    fair = FairConfig(share, 0.5)
    pool_new = pool[newcomer[pool]]
    merged = list(dict.fromkeys([*ranked[:k].tolist(), *rank(scores, pool_new, k).tolist()]))
    merged.sort(key=lambda p: (-scores[p], p))
    expected = fair_rerank(merged, [bool(newcomer[p]) for p in merged], k, fair)
    assert fair_top(ranked, newcomer, k, fair, scores, pool).tolist() == expected
    assert fair_top(ranked, newcomer, k, fair, scores, pool, np.flatnonzero(newcomer)).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    n=st.sampled_from([10, 1_000, 40_000, 120_000]),
    limit=st.integers(1, 300),
    levels=st.sampled_from([0, 2, 50]),
    skew=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_rank_is_the_sorted_list_cut_ties_by_position(n: int, limit: int, levels: int, skew: bool, seed: int) -> None:
    """The sampled cut over long lists changes nothing: the answer is the full sort's head, ties by
    position, whatever the scores (continuous, few values, mostly one value, one huge outlier)."""
    rng = np.random.default_rng(seed)
    scores = rng.random(n + 5) if levels == 0 else rng.integers(0, levels, n + 5).astype(np.float64)
    if skew:
        scores[rng.random(n + 5) < 0.9] = 0.0
        scores[int(rng.integers(0, n + 5))] = 1e9
    candidates = np.sort(rng.choice(n + 5, size=n, replace=False)).astype(np.int64)
    expected = candidates[np.lexsort((candidates, -scores[candidates]))][:limit]
    assert rank(scores, candidates, limit).tolist() == expected.tolist()


def test_the_rankers_candidates_keep_equals_together() -> None:
    """The walk's best ``k`` are cut at a value, not a position: organisations with the last one's
    walk value (members of one past project often share it) are all candidates or none is, whatever
    their order in the registry; the best by text and by profile are added the same way."""
    rng = np.random.default_rng(3)
    h = _history(rng, orgs=60, projects=80)
    f = features(h, [0], np.ones(len(h.project_ids), dtype=bool), FeatureConfig())
    f.walk = np.zeros(60)
    f.walk[[5, 40, 41, 42, 43]] = [0.9, 0.2, 0.2, 0.2, 0.2]  # four equals at the cut of k=3
    f.walk[[10, 11]] = 0.1
    f.text, f.profile = np.zeros(60, dtype=np.float32), np.zeros(60, dtype=np.float32)
    f.text[[7, 8, 9]] = [0.5, 0.4, 0.4]  # k // 3 = 1: the best, and its equals (none), by text
    pool = np.arange(1, 60)
    cand = FittedRanker(RankerConfig(candidates=3)).candidates(f, pool)
    assert cand.tolist() == [5, 7, 40, 41, 42, 43]
    assert FittedRanker(RankerConfig(candidates=3)).candidates(f, pool[::-1].copy()).tolist() == cand.tolist()


def _history(rng: np.random.Generator, orgs: int = 60, projects: int = 80) -> History:
    """A random co-participation history: consortia of 3-6 from a few countries and sectors."""

    rows, cols = [], []
    for p in range(projects):
        members = rng.choice(orgs, size=int(rng.integers(3, 7)), replace=False)
        rows += members.tolist()
        cols += [p] * len(members)
    inc = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(orgs, projects))
    coord = sp.csr_matrix((orgs, projects), dtype=np.float32)
    countries = rng.choice(["DE", "FR", "IT", "ES", ""], size=orgs)
    sectors = rng.choice(["research", "enterprise", "higher_education"], size=orgs)
    return History(
        np.arange(1, orgs + 1),
        countries,
        sectors,
        np.arange(1, projects + 1),
        rng.integers(2014, 2020, size=projects),
        inc,
        coord,
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_network_features_match_their_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = _history(rng)
    known = rng.choice(len(h.org_ids), size=3, replace=False).tolist()
    mask = rng.random(h.incidence.shape[1]) < 0.8
    f = features(h, known, mask, FeatureConfig(), ref_year=2020)
    dense = h.incidence.toarray() * mask[None, :]
    together = dense[known].sum(axis=0)  # known members in each past project
    assert np.allclose(f.overlap, (dense * together[None, :]).max(axis=1))
    assert np.allclose(f.shared, dense @ together)
    assert np.allclose(f.breadth, sum((dense @ dense[k]) > 0 for k in known))
    share = np.where(h.project_sizes > 1, together / np.maximum(h.project_sizes - 1, 1), 0) * (together >= 2)
    assert np.allclose(f.reunion, (dense * share[None, :]).max(axis=1))
    w = np.where(h.project_sizes > 1, 1.0 / np.sqrt(np.maximum(h.project_sizes - 1, 1)), 0.0) * mask
    assert np.allclose(f.direct, dense @ (w * together))
    assert np.allclose(f.two_hop, dense @ (w * (dense.T @ f.direct)))  # read from the neighbourhood only
    assert np.allclose(f.coordinator_ties, dense @ (w * (dense[known[0]] > 0)))
    degree, size = np.maximum(dense.sum(axis=1), 1), np.maximum(h.project_sizes * mask, 1)
    restart = np.zeros(len(h.org_ids))
    restart[known] = 1 / 3
    r = restart.copy()
    for _ in range(FeatureConfig().walk_steps):  # the walk, as a dense power iteration
        r = 0.15 * restart + 0.85 * (dense @ ((dense.T @ (r / degree)) / size))
    assert np.allclose(f.walk, r)
    countries = [h.countries[k] for k in known]
    assert np.allclose(f.same_country, [countries.count(c) / 3 if c else 0 for c in h.countries])
    # the walk restarts at the known members: a probability distribution, highest where it restarts
    # and never reaching an organisation that shares no past project, even indirectly, with them
    r = walk(h, known, mask.astype(float), 0.85, 30)
    assert r.sum() <= 1 + 1e-6 and r.min() >= 0  # float32
    reach = np.zeros(len(h.org_ids), dtype=bool)
    reach[known] = True
    for _ in range(len(h.org_ids)):
        reach = reach | ((dense @ (dense[reach].sum(axis=0) > 0)) > 0)
    assert not r[~reach].any() and (r[known] >= 0.15 / 3 - 1e-9).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), members=st.integers(0, 3), idea=st.booleans())
def test_columns_made_where_they_can_be_non_zero_equal_the_full_columns(seed: int, members: int, idea: bool) -> None:
    """A column computed on the neighbourhood alone, an idea column skipped without an idea, a static one
    kept across requests: each equals the column computed for every organisation, and so do the scores."""
    from matcher.ranking import COLUMNS, default_weights, score

    rng = np.random.default_rng(seed)
    h = _history(rng)
    known = rng.choice(len(h.org_ids), size=members, replace=False).tolist()
    mask = rng.random(h.incidence.shape[1]) < 0.8
    text = rng.random(len(h.org_ids)).astype(np.float32) if idea else None
    for _ in range(2):  # the second request reads the static columns the first one made
        f = features(h, known, mask, FeatureConfig(), ref_year=2020, profile_scores=text)
        full = f.matrix()
        for i, column in enumerate(COLUMNS):
            made = f.column(column)
            assert np.allclose(made.values, full[:, i], atol=1e-6), column.name
            if made.support is not None:  # zero elsewhere, as said
                assert not np.delete(made.values, made.support).any(), column.name
        for discovery in (False, True):
            expected = full @ default_weights(ScoreConfig(), discovery=discovery)
            assert np.allclose(score(f, ScoreConfig(), discovery=discovery), expected, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_text_feature_is_the_best_matching_past_project(seed: int) -> None:
    from matcher.ranking import best_project
    from matcher.ranking import idea_text as _text

    rng = np.random.default_rng(seed)
    h = _history(rng)
    vectors = rng.normal(size=(len(h.project_ids), 8)).astype(np.float32)
    h.project_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)  # unit vectors, as encoders give
    h.project_vectors[rng.random(len(h.project_ids)) < 0.2] = 0  # projects without text
    query, mask = rng.normal(size=8).astype(np.float32), (rng.random(len(h.project_ids)) < 0.8).astype(float)
    query /= np.linalg.norm(query)
    text, per_project = _text(h, query, mask)
    # each project's similarity, as float16 vectors give it (HalfVectors: within 1e-3 of float32)
    assert np.allclose(per_project, (h.project_vectors @ query) * mask, atol=1e-3)
    sims = np.where(h.incidence.toarray() > 0, per_project[None, :], -np.inf)
    expected = np.maximum(sims.max(axis=1), 0.0)  # nothing similar (or no project): 0
    assert np.array_equal(text, expected.astype(np.float32))
    f = features(h, [0], mask > 0, FeatureConfig(), similarities=(text, per_project))
    best = np.array([best_project(h, f, pos) for pos in range(len(h.org_ids))])
    has = expected > 0
    assert (best[~has] == -1).all() and (best[has] == np.argmax(sims, axis=1)[has]).all()


def test_a_partner_of_a_partner_is_introduced_by_the_members_old_partner() -> None:
    from matcher.recommend import Matcher

    # member 0 worked with 1 (project 0) and with 2 (project 1); 1 later worked with 3..8 (project 2),
    # 2 with 9 and 10 (project 3): all of 3..10 are partners of partners, none has worked with 0
    projects = [[0, 1], [0, 2], [1, 3, 4, 5, 6, 7, 8], [2, 9, 10]]
    rows = [o for p in projects for o in p]
    cols = [i for i, p in enumerate(projects) for _ in p]
    n = 11
    inc = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(projects)))
    h = History(
        np.arange(1, n + 1),
        np.full(n, "DE"),
        np.full(n, "research"),
        np.arange(1, 5),
        np.full(4, 2018),
        inc,
        sp.csr_matrix((n, 4), dtype=np.float32),
    )
    f = features(h, [0], np.ones(4, dtype=bool), FeatureConfig(), ref_year=2020)
    names = {i: f"org {i}" for i in range(1, n + 1)}
    m = Matcher(h, names, {p: (f"project {p}", 2018) for p in range(1, 5)}, None, None)
    introduced = [m._network_reasons(p, f, [0]) for p in (3, 8, 9)]
    assert [r[0].code for r in introduced] == ["partner_of_partner"] * 3
    assert [(r[0].data["via_id"], r[0].data["project_id"], r[0].data["partner_id"]) for r in introduced] == [
        (2, 3, 1),  # organisation 2 (position 1) worked with 3 in project 3, and with the member in project 1
        (2, 3, 1),
        (3, 4, 1),
    ]
    assert "worked with org 2 in project 3 (2018), who has worked with org 1" in introduced[0][0].text
    assert m._network_reasons(1, f, [0])[0].code == "worked_with"  # an old partner: no introduction


def test_fitted_ranker_learns_a_planted_signal_and_keeps_the_default_when_it_cannot_beat_it() -> None:
    rng = np.random.default_rng(7)
    h = _history(rng, orgs=300, projects=600)
    mask = np.ones(h.incidence.shape[1], dtype=bool)
    config = ScoreConfig()

    def consortia(pick):  # type: ignore[no-untyped-def]
        ranker = FittedRanker(RankerConfig(candidates=100, trees=60, threads=1))
        for i in range(400):
            known = rng.choice(len(h.org_ids), size=3, replace=False).tolist()
            pool = np.setdiff1d(np.arange(len(h.org_ids)), known)
            f = features(h, known, mask, FeatureConfig(), ref_year=2020)
            ranker.add(f, score(f, config), pool, pick(f, pool), order=i)
        return ranker

    # the hidden partner is always the candidate with the most ties to the applicant's sector peers:
    # a rule the default weights do not know, which LambdaMART should find
    def planted(f, pool):  # type: ignore[no-untyped-def]
        cand = pool[f.walk[pool] > 0]
        return int(cand[np.argmax(f.coordinator_ties[cand] + 0.01 * f.same_sector[cand])])

    learned = consortia(planted)
    assert learned.fit() == "lambdamart"
    assert learned.validation["lambdamart"] > learned.validation["default"]
    # hidden partners drawn at random from the pool: nothing to learn; too few are candidates to fit on,
    # or the fitted model must not be kept over the default unless it validates better
    noise = consortia(lambda f, pool: int(rng.choice(pool)))
    try:
        kind = noise.fit()
    except ValueError as too_few:
        assert "too few" in str(too_few)
    else:
        assert kind == "default" or noise.validation["lambdamart"] > noise.validation["default"]


DEMO = __import__("pathlib").Path(__file__).resolve().parent.parent / "seed_data" / "demo"


@pytest.fixture
def demo_matcher(sqlite_db, tmp_path):  # type: ignore[no-untyped-def]
    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher import importers
    from matcher.indexing import build_index
    from matcher.recommend import Matcher

    for name in ("projects.csv", "organisations.csv"):
        with sqlite_db.session() as s:
            importers.import_path(s, DEMO / name, progress=False)
    encoder = HashingEncoder()
    store = IndexStore(tmp_path / "index")
    build_index(sqlite_db, encoder, store, progress=False)
    return Matcher.from_db(sqlite_db, encoder, store.load(store.current_name(), encoder.model_id))


def _busiest_pair(matcher):  # type: ignore[no-untyped-def]
    h = matcher.history
    counts = np.asarray(h.incidence.sum(axis=1)).ravel()
    a = int(np.argmax(counts))
    project = h.incidence[a].indices[0]
    b = int(next(i for i in h.incidence_t[project].indices if i != a))
    return int(h.org_ids[a]), int(h.org_ids[b])


def test_recommendations_are_flagged_explained_and_fair(demo_matcher) -> None:  # type: ignore[no-untyped-def]
    from matcher.recommend import MatchRequest

    applicant, partner = _busiest_pair(demo_matcher)
    req = MatchRequest(
        idea="inclusion of pupils with special needs",
        applicant=applicant,
        partners=[partner],
        sectors=["enterprise"],
        exclude_countries=["DE"],
        k=10,
        newcomer_share=0.3,
    )
    result = demo_matcher.recommend(req)
    ids = [r.organisation_id for r in result.results]
    assert len(ids) == 10 and len(set(ids)) == 10 and applicant not in ids and partner not in ids
    assert all(r.country != "DE" for r in result.results)
    assert any(r.known_partner for r in result.results)  # the network is used
    assert sum(r.newcomer for r in result.results) >= 3  # FA*IR minimum for 0.3 at alpha 0.5
    codes = {reason.code for r in result.results for reason in r.reasons}
    assert {"worked_with", "newcomer", "experience"} <= codes
    for r in result.results:
        assert r.reasons and all(reason.text for reason in r.reasons)
        assert r.eligibility_with is not None
    off = demo_matcher.recommend(
        MatchRequest(idea="x", applicant=applicant, partners=[partner], k=10, newcomer_share=0.0)
    )
    assert [r.score for r in off.results] == sorted((r.score for r in off.results), reverse=True)


def test_the_same_idea_on_another_draft_reuses_its_similarities_and_answers_as_a_fresh_matcher(  # type: ignore[no-untyped-def]
    demo_matcher, monkeypatch
) -> None:
    """Adding a partner to the draft re-runs the search with the same idea: its similarities to every
    project and profile are kept from the first run (read-only), and the answer is exactly a new
    matcher's, which computes them again."""
    from dataclasses import asdict

    from matcher.recommend import Matcher, MatchRequest

    applicant, partner = _busiest_pair(demo_matcher)
    idea = "outdoor learning and biodiversity for primary schools"
    first = demo_matcher.recommend(MatchRequest(idea=idea, applicant=applicant, partners=[partner]))
    added = first.results[0].organisation_id
    draft = MatchRequest(idea=idea, applicant=applicant, partners=[partner, added])
    kept = demo_matcher.recommend(draft)
    assert len(demo_matcher._ideas) == 1
    text, _best, profile = next(iter(demo_matcher._ideas.values()))
    assert profile is not None and profile.any() and not text.flags.writeable and not profile.flags.writeable
    fresh = Matcher(
        demo_matcher.history, demo_matcher.names, demo_matcher.projects, demo_matcher.encoder, demo_matcher.index
    )
    fresh.hidden = demo_matcher.hidden
    assert [asdict(r) for r in kept.results] == [asdict(r) for r in fresh.recommend(draft).results]
    assert added not in [r.organisation_id for r in kept.results]
    # bounded by bytes: another idea pushes the oldest out once the budget is spent, never the newest
    monkeypatch.setattr("matcher.recommend.IDEAS_BYTES", 1)
    demo_matcher.recommend(MatchRequest(idea="choirs and music for elderly people", applicant=applicant))
    assert len(demo_matcher._ideas) == 1 and next(iter(demo_matcher._ideas)) != next(iter(fresh._ideas))


def test_proposed_consortia_are_eligible_and_cover_sectors(demo_matcher) -> None:  # type: ignore[no-untyped-def]
    from matcher.recommend import MatchRequest

    applicant, _ = _busiest_pair(demo_matcher)
    for action, sectors in (("cooperation", ["enterprise", "youth"]), ("small-scale", []), ("school", [])):
        req = MatchRequest(
            idea="digital skills",
            action=action,
            applicant=applicant if action != "school" else None,
            sectors=sectors,
            call_year=2019 if action == "school" else None,  # the legacy school exchange: calls 2018-2020
        )
        proposals = demo_matcher.propose_consortia(req, n=3)
        assert proposals, action
        firsts = set()
        for c in proposals:
            assert c.eligibility.eligible
            ids = [m.organisation_id for m in c.members]
            assert len(set(ids)) == len(ids) and applicant not in ids
            firsts.add(ids[0])
            if action == "school":
                assert all(m.sector == "school" for m in c.members)
            assert c.newcomers >= 1
        assert len(firsts) == len(proposals)  # alternatives, not copies
    with pytest.raises(LookupError, match="unknown organisation"):
        demo_matcher.recommend(MatchRequest(applicant=10**9))


def test_a_registration_or_an_edit_refreshes_the_matcher_in_hand_as_a_rebuild_would(demo_env: dict[str, str]) -> None:
    """Registrations must not cost every worker a rebuild from the whole registry: the matcher in hand
    takes the new and edited organisations, and ends up as a rebuild would; anything else rebuilds."""
    import time

    from sqlalchemy import select

    from embeddings.index import HalfVectors
    from matcher import importers, registry
    from matcher.db import Database, Participation
    from matcher.ranking import idea_text
    from matcher.recommend import Matcher, MatchRequest

    db = Database(demo_env["PARTNER_MATCH_DATABASE_URL"])
    before = Matcher.from_db(db, None, None)
    vectors = np.random.default_rng(0).standard_normal((len(before.history.project_ids), 16), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    before.history.keep_texts(np.arange(len(vectors)), HalfVectors(vectors))  # as a build with a model leaves them
    time.sleep(0.01)
    with db.session() as s:
        new = importers.register_organisation(
            s,
            {"name": "Tromsø Green Building School", "country": "NO", "sector": "vet", "description": "Apprentices."},
        )
        edited = int(before.history.org_ids[5])
        registry.update_organisation(s, edited, {"country": "EE", "name": "Renamed Tallinn Centre"})
    fresh = before.refreshed(db, None)
    full = Matcher.from_db(db, None, None)
    assert fresh is not None and new in fresh.history.org_position
    for a, b in ((fresh.history.org_ids, full.history.org_ids), (fresh.history.countries, full.history.countries)):
        assert a.tolist() == b.tolist()
    assert fresh.history.sectors.tolist() == full.history.sectors.tolist() and fresh.names == full.names
    assert fresh.newcomer.tolist() == full.newcomer.tolist() and fresh.org_types.tolist() == full.org_types.tolist()
    req = MatchRequest(applicant=int(full.history.org_ids[0]), countries=["NO", "EE"], k=20, newcomer_share=0.0)
    assert [r.organisation_id for r in fresh.recommend(req).results] == [
        r.organisation_id for r in full.recommend(req).results
    ]
    assert new in [r.organisation_id for r in fresh.recommend(req).results]  # found by the next search
    # the projects did not change: the idea is compared with the same past projects' texts
    idea, everything = vectors[3], np.ones(len(vectors))
    text_before, sims_before = idea_text(before.history, idea, everything)
    text_fresh, sims_fresh = idea_text(fresh.history, idea, everything)
    assert fresh.history.text_rows()[1] is before.history.text_rows()[1] and sims_fresh.tolist() == sims_before.tolist()
    assert text_fresh[: len(text_before)].tolist() == text_before.tolist() and text_before.max() > 0.99
    # a change to who took part in what is not an organisation's edit: it rebuilds
    with db.session() as s:
        project = s.scalars(select(Participation.project_id)).first()
        s.add(Participation(organisation_id=new, project_id=project, role="partner"))
    assert fresh.refreshed(db, None) is None
    db.dispose()


def test_an_unregistered_applicant_counts_by_its_country_and_sector_like_a_registered_one() -> None:
    """The evaluation's ``--known none`` and the service's applicant without registration: country and
    sector shape "who is like the consortium" exactly as a registered member with them would."""
    rng = np.random.default_rng(11)
    h = _history(rng)
    k = int(np.flatnonzero(h.countries != "")[0])
    mask = np.ones(h.incidence.shape[1], dtype=bool)
    registered = features(h, [k], mask, FeatureConfig(), ref_year=2020)
    virtual = features(h, [], mask, FeatureConfig(), ref_year=2020, virtual=[(str(h.countries[k]), str(h.sectors[k]))])
    for column in ("same_country", "same_sector", "coordinator_country"):
        assert np.array_equal(getattr(registered, column), getattr(virtual, column)), column
    assert virtual.coordinator_country.any() and not virtual.shared.any()  # no network: it has no past
    unknown = features(h, [], mask, FeatureConfig(), ref_year=2020, virtual=[("IS", "youth")])
    assert not unknown.same_country.any() and not unknown.coordinator_country.any()  # nobody from Iceland here


def test_ranker_learns_the_idea_as_the_service_encodes_it(sqlite_db, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """For an encoder whose queries differ from its documents (e5), the consortia's texts are encoded
    as a user's idea would be, each once; without that, the stored project vector is the idea."""
    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher import importers, ranker
    from matcher.indexing import build_index

    for name in ("projects.csv", "organisations.csv"):
        with sqlite_db.session() as s:
            importers.import_path(s, DEMO / name, progress=False)
    encoder = HashingEncoder()
    build_index(sqlite_db, encoder, IndexStore(tmp_path / "index"), progress=False)
    ideas: list[np.ndarray | None] = []
    real_features = ranker.features

    def spy(history, known, mask, config, idea, **kw):  # type: ignore[no-untyped-def]
        ideas.append(idea)
        return real_features(history, known, mask, config, idea, **kw)

    monkeypatch.setattr(ranker, "features", spy)
    monkeypatch.setattr(ranker.FittedRanker, "fit", lambda self, progress: "default")  # the features are the point
    calls: list[list[str]] = []

    def as_stored(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return encoder.encode_documents(texts)

    plain = ranker.fit_ranker(sqlite_db, progress=False, model_id=encoder.model_id)
    stored, ideas[:] = list(ideas), []
    same = ranker.fit_ranker(sqlite_db, progress=False, model_id=encoder.model_id, encode_ideas=as_stored)
    encoded = [t for call in calls for t in call]
    assert encoded and len(set(encoded)) == len(encoded) and all(len(c) <= 64 for c in calls)  # each idea once
    assert same.text_model == plain.text_model == encoder.model_id
    assert any(v is not None for v in stored) and len(ideas) == len(stored)
    assert all((a is None and b is None) or np.allclose(a, b) for a, b in zip(stored, ideas, strict=True))
    ideas[:] = []
    ranker.fit_ranker(
        sqlite_db,
        progress=False,
        model_id=encoder.model_id,
        encode_ideas=lambda t: np.full((len(t), encoder.dimension), 7.0),
    )
    assert all(v is None or (v == 7.0).all() for v in ideas) and any(v is not None for v in ideas)


def test_the_complementarity_bonus_is_each_organisations_own_gains() -> None:
    """The bonus is read from a country x sector table: it must equal, organisation by organisation,
    the gains written out one at a time."""
    from matcher.complementarity import Coded, ComplementarityConfig, gains
    from matcher.eligibility import counting_countries

    rng = np.random.default_rng(3)
    raw_countries = rng.choice(["DE", "NO", "PL", "", "US", "TR"], 400)
    raw_sectors = rng.choice(["vet", "school", "higher", "youth", "adult"], 400)
    countries = Coded(*np.unique(raw_countries, return_inverse=True))
    sectors = Coded(*np.unique(raw_sectors, return_inverse=True))
    members, wanted, config = [0, 1], ["youth", "school"], ComplementarityConfig()
    programme = counting_countries(2027)
    for needed in (0, 1):
        g = gains(countries, sectors, members, wanted, needed, 2027)
        bonus = g.bonus(config)
        have_s, have_c = {raw_sectors[m] for m in members}, {raw_countries[m] for m in members}
        for i in range(400):
            new_s, new_c = raw_sectors[i] not in have_s, raw_countries[i] not in have_c
            wanted_s = new_s and raw_sectors[i] in wanted
            needed_c = bool(needed) and new_c and raw_countries[i] in programme
            expected = (
                config.adds_wanted_sector * wanted_s
                + config.adds_sector * new_s
                + config.adds_needed_country * needed_c
                + config.repeats * (not new_s and not new_c)
            )
            assert abs(float(bonus[i]) - expected) < 1e-6
            assert (g.adds_sector(i), g.adds_wanted_sector(i), g.adds_needed_country(i)) == (new_s, wanted_s, needed_c)


def test_a_country_found_anywhere_in_a_pool_past_its_first_thousand() -> None:
    from matcher.complementarity import Coded

    names, codes = np.unique(np.array(["DE"] * 3000 + ["FR", "IT"]), return_inverse=True)
    countries = Coded(names, codes)
    pool = np.arange(3002)
    assert countries.any_in({"FR"}, pool) and countries.any_in({"IT", "PL"}, pool[2000:])
    assert not countries.any_in({"FR"}, pool[:3000]) and not countries.any_in({"PL"}, pool)
    assert not countries.any_in({"DE"}, pool[:0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_shared_project_named_is_the_latest_of_those_both_took_part_in(seed: int) -> None:
    from matcher.recommend import Matcher

    rng = np.random.default_rng(seed)
    h = _history(rng, orgs=30, projects=60)
    m = Matcher(h, {}, {}, None, None)
    dense = h.incidence.toarray() > 0
    for a, b in rng.integers(0, 30, size=(20, 2)).tolist():
        both = np.flatnonzero(dense[a] & dense[b])
        expected = int(h.project_ids[both[np.argmax(h.project_years[both])]]) if len(both) else None
        assert m._shared_project(a, b) == expected == m._shared_project(b, a)  # equals in year: the first


def test_a_consortiums_walk_is_kept_for_its_next_search_and_never_for_another() -> None:
    rng = np.random.default_rng(3)
    h, fresh = _history(rng), None
    full = np.ones(h.incidence.shape[1])
    first = walk(h, [0, 5], full, 0.85, 5)
    assert walk(h, [5, 0], full, 0.85, 5) is first  # the same consortium: kept, in any order
    assert not first.flags.writeable  # shared: read-only
    half = full.copy()
    half[::2] = 0
    for known, mask, steps in (([0, 6], full, 5), ([0, 5], half, 5), ([0, 5], full, 3), ([0, 5, 6], full, 5)):
        fresh = _history(np.random.default_rng(3))  # the same history, nothing kept
        got = walk(h, known, mask, 0.85, steps)
        assert got is not first and np.array_equal(got, walk(fresh, known, mask, 0.85, steps))
