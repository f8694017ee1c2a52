"""The funnel board: moves (pinned, on the timeline), column paging and bounded totals, the owner's
stage edits with their refusals, access, CSRF and escaping."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import event

from crm import stages
from crm.demo import ensure_stages
from crm.errors import FieldError
from crm.extensions import db
from crm.models import Customer, Interaction, Kind, Stage, User
from tests.conftest import page_token, reload
from tests.factories import customer, order, utc

HX = {"HX-Request": "true"}


@pytest.fixture
def funnel(app):
    """The default stages; Anna and Boris with orders on New, Clara (no orders) on Lapsed."""
    with app.app_context():
        keys = ensure_stages()
        anna = customer("Anna Ivanova")
        order(anna, utc(2026, 3, 1), "120.00")
        boris = customer("Boris Petrov")
        order(boris, utc(2025, 6, 1), "50.00")
        clara = customer("Clara Smirnova")
        # Placed by hand (an order moves a card to its automatic stage): the tests start from here.
        anna.stage_id, boris.stage_id, clara.stage_id = keys["new"], keys["new"], keys["lapsed"]
        db.session.commit()
        return {"stage": keys, "anna": anna.id, "boris": boris.id, "clara": clara.id}


def _token(client) -> str:
    return page_token(client, "/funnel")


def _head(html: str, stage_id: int) -> str:
    match = re.search(rf'<header class="column-head" id="head-{stage_id}".*?</header>', html, re.S)
    assert match, f"no header for stage {stage_id}"
    return match.group(0)


# --- moving a card (domain) ------------------------------------------------------------------------

def test_a_move_pins_the_card_and_puts_it_on_the_timeline(app, ctx, funnel, owner):
    anna = db.session.get(Customer, funnel["anna"])
    assert stages.move_customer(anna, funnel["stage"]["regular"], db.session.get(User, owner.id)) is True
    db.session.commit()

    anna = reload(app, Customer, funnel["anna"])
    assert anna.stage_id == funnel["stage"]["regular"]
    assert anna.stage_pinned is True
    entry = db.session.scalars(db.select(Interaction).where(Interaction.customer_id == anna.id,
                                                            Interaction.kind == Kind.STAGE)
                               .order_by(Interaction.id.desc())).first()
    assert entry.data == {"before": funnel["stage"]["new"], "after": funnel["stage"]["regular"]}
    assert entry.user_id == owner.id


def test_a_move_to_the_stage_the_card_is_on_changes_nothing(ctx, funnel):
    anna = db.session.get(Customer, funnel["anna"])
    entries = db.select(db.func.count()).where(Interaction.kind == Kind.STAGE)
    before = db.session.scalar(entries)
    assert stages.move_customer(anna, funnel["stage"]["new"], None) is False
    assert anna.stage_pinned is False
    assert db.session.scalar(entries) == before


def test_a_move_to_an_unknown_stage_is_refused(ctx, funnel):
    with pytest.raises(FieldError) as refused:
        stages.move_customer(db.session.get(Customer, funnel["anna"]), 999_999, None)
    assert refused.value.field == "stage_id"


def test_unpin_lets_the_rebuild_move_the_card_again(ctx, funnel):
    anna = db.session.get(Customer, funnel["anna"])
    stages.move_customer(anna, funnel["stage"]["regular"], None)
    stages.unpin(anna)
    assert anna.stage_pinned is False
    assert anna.stage_id == funnel["stage"]["regular"]


# --- columns and totals (domain) -------------------------------------------------------------------

def _crowd() -> dict:
    """A stage of 11 customers: 8 with orders (two on the same day) and 3 without; 4 are the manager's."""
    stage = Stage(name="Crowded", position=0)
    db.session.add(stage)
    db.session.flush()
    manager = User(email="m@example.com", name="M", password_hash="x", role="manager")
    db.session.add(manager)
    db.session.flush()
    made = []
    for i in range(11):
        c = customer(f"Crowd {i:02d}", manager_id=manager.id if i % 3 == 0 else None)
        c.stage_id = stage.id
        if i < 8:
            c.last_order_at = utc(2026, 1, 1 + min(i, 6))  # Crowd 06 and 07 share a day
            c.total_spent = 1000 * (i + 1)
        made.append(c)
    db.session.commit()
    return {"stage": stage.id, "manager": manager.id, "ids": [c.id for c in made]}


@pytest.fixture
def crowded(app):
    with app.app_context():
        return _crowd()


def _walk(stage_id: int, manager: str = "", size: int = 3) -> list[int]:
    seen, after = [], None
    while True:
        page = stages.column(stage_id, after, manager, size=size)
        assert len(page.cards) <= size
        seen += [card.id for card in page.cards]
        if page.next_cursor is None:
            return seen
        after = page.next_cursor


def test_a_column_pages_by_keyset_most_recent_buyers_first_and_everyone_once(ctx, crowded):
    ids = crowded["ids"]
    walked = _walk(crowded["stage"])
    # Last order descending (ties by id descending), then the customers without orders, newest first.
    assert walked == [ids[7], ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0], ids[10], ids[9], ids[8]]
    first = stages.column(crowded["stage"], size=3).cards[0]
    assert (first.name, first.total_spent, first.pinned) == ("Crowd 07", 8000, False)


def test_a_column_filtered_by_manager_pages_through_their_cards_only(ctx, crowded):
    ids = crowded["ids"]
    assert _walk(crowded["stage"], str(crowded["manager"]), size=2) == [ids[6], ids[3], ids[0], ids[9]]
    assert set(_walk(crowded["stage"], "none", size=4)) == set(ids) - {ids[0], ids[3], ids[6], ids[9]}


@pytest.mark.postgres
def test_columns_totals_and_a_stage_removal_work_the_same_on_postgresql(pg_ctx, monkeypatch):
    crowd = _crowd()
    ids, manager = crowd["ids"], str(crowd["manager"])
    assert _walk(crowd["stage"]) == [ids[i] for i in (7, 6, 5, 4, 3, 2, 1, 0, 10, 9, 8)]
    for small_book in (0, stages.SMALL_BOOK):
        monkeypatch.setattr(stages, "SMALL_BOOK", small_book)
        assert _walk(crowd["stage"], manager, size=2) == [ids[6], ids[3], ids[0], ids[9]]
        assert stages.board_totals([crowd["stage"]], manager)[crowd["stage"]] == stages.Totals(4, False, 12000)
        stages.forget_totals(crowd["stage"])
    assert stages.totals(crowd["stage"], cap=5).capped

    other = stages.create_stage("Other")
    assert stages.delete_stage(db.session.get(Stage, crowd["stage"]), other.id, None) == 11
    db.session.commit()
    assert stages.count(other.id) == (11, False)
    entry = db.session.scalars(db.select(Interaction).where(Interaction.customer_id == ids[0])).all()[-1]
    assert (entry.kind, entry.data) == (Kind.STAGE, {"before": crowd["stage"], "after": other.id, "deleted": True})


def test_a_tampered_cursor_starts_the_column_again_instead_of_failing(ctx, crowded):
    assert stages.column(crowded["stage"], "not-a-cursor", size=3).cards[0].name == "Crowd 07"


def test_totals_are_exact_under_the_cap_and_a_lower_bound_over_it(ctx, crowded):
    exact = stages.totals(crowded["stage"])
    assert (exact.count, exact.capped, exact.ltv) == (11, False, sum(1000 * (i + 1) for i in range(8)))
    capped = stages.totals(crowded["stage"], cap=5)
    assert (capped.count, capped.capped) == (5, True)
    assert 0 < capped.ltv <= exact.ltv
    mine = stages.totals(crowded["stage"], str(crowded["manager"]))
    assert (mine.count, mine.ltv) == (4, 1000 + 4000 + 7000)


def _plans(run) -> list[tuple[str, str]]:
    """Run `run`, returning each statement it sent with SQLite's plan for it."""
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return [(statement, " ".join(str(row[-1]) for row in db.session.connection().exec_driver_sql(
        f"EXPLAIN QUERY PLAN {statement}", parameters))) for statement, parameters in statements]


@pytest.mark.parametrize("small_book, index", [(0, "INDEX ix_customers_stage_"),
                                               (2_000, "INDEX ix_customers_manager_")])
def test_a_column_filtered_by_manager_is_read_through_the_index_chosen_for_it(ctx, crowded, monkeypatch,
                                                                               small_book, index):
    """Pages, counts and sums are index ranges, no sort: through the manager's index for a small
    book, the stage's for a big one, never left to SQLite's guess."""
    monkeypatch.setattr(stages, "SMALL_BOOK", small_book)

    def board():
        for manager in ("none", str(crowded["manager"])):
            _walk(crowded["stage"], manager, size=2)
            stages.totals(crowded["stage"], manager)

    plans = [(statement, plan) for statement, plan in _plans(board) if "stage_id" in statement]
    assert len(plans) > 8
    for statement, plan in plans:
        assert index in plan, (statement, plan)
        assert "TEMP B-TREE" not in plan and "SCAN customers" not in plan, (statement, plan)


def test_the_unfiltered_board_reads_the_stage_index(ctx, crowded):
    def board():
        _walk(crowded["stage"], "", size=2)
        stages.totals(crowded["stage"])
        stages.count(crowded["stage"])

    for statement, plan in _plans(board):
        assert "ix_customers_stage_last_order" in plan and "TEMP B-TREE" not in plan, (statement, plan)


def test_a_small_book_is_added_up_exactly_in_one_pass(ctx, crowded):
    manager = str(crowded["manager"])
    assert stages.reads_by_manager(manager) and not stages.reads_by_manager("")
    kept = stages.board_totals([crowded["stage"], 999_999], manager)
    assert kept[crowded["stage"]] == stages.Totals(4, False, 1000 + 4000 + 7000)
    assert kept[999_999] == stages.Totals(0, False, 0)


def test_board_totals_are_kept_a_minute_and_forgotten_after_a_move(ctx, crowded, monkeypatch):
    stage = crowded["stage"]
    assert stages.board_totals([stage])[stage].count == 11
    db.session.get(Customer, crowded["ids"][0]).stage_id = None
    db.session.commit()
    assert stages.board_totals([stage])[stage].count == 11  # kept
    assert stages.board_totals([stage], str(crowded["manager"]))[stage].count == 3  # each filter its own
    later = time.time() + stages.TOTALS_SECONDS + 1
    monkeypatch.setattr(stages.time, "time", lambda: later)
    assert stages.board_totals([stage])[stage].count == 10  # stale entries are counted again
    db.session.get(Customer, crowded["ids"][1]).stage_id = None
    db.session.commit()
    stages.forget_totals(stage, None)
    assert stages.board_totals([stage])[stage].count == 9


# --- the owner's stage edits (domain) --------------------------------------------------------------

def test_a_new_stage_goes_at_the_end_without_a_key(ctx, funnel):
    added = stages.create_stage("  VIP   follow-up ")
    assert (added.name, added.key) == ("VIP follow-up", None)
    assert stages.ordered()[-1] is added


@pytest.mark.parametrize("name, message", [
    ("", "Enter the stage's name."),
    ("   ", "Enter the stage's name."),
    ("x" * 81, "Use at most 80 characters."),
    ("lapsed", "Another stage is already called “lapsed”."),
])
def test_bad_stage_names_are_refused_on_the_name_field(ctx, funnel, name, message):
    with pytest.raises(FieldError) as refused:
        stages.create_stage(name)
    assert (refused.value.field, refused.value.message) == ("name", message)


def test_a_stage_keeps_its_own_name_and_keyed_stages_can_be_renamed(ctx, funnel):
    lapsed = db.session.get(Stage, funnel["stage"]["lapsed"])
    stages.rename_stage(lapsed, "Lapsed")  # its own name is no duplicate
    stages.rename_stage(lapsed, "Slipping away")
    assert (lapsed.name, lapsed.key) == ("Slipping away", "lapsed")
    with pytest.raises(FieldError):
        stages.rename_stage(lapsed, "REGULAR")


def test_reorder_puts_a_stage_at_its_new_place_and_keeps_the_others_in_order(ctx, funnel):
    inactive = db.session.get(Stage, funnel["stage"]["inactive"])
    stages.reorder_stage(inactive, 0)
    order_now = [s.key for s in stages.ordered()]
    assert order_now[:3] == ["inactive", "new", "first_purchase"]
    assert [s.position for s in stages.ordered()] == list(range(9))
    stages.reorder_stage(inactive, 99)
    assert stages.ordered()[-1] is inactive


def test_a_stage_with_customers_is_removed_only_with_somewhere_for_them_to_go(ctx, funnel, owner):
    vip = stages.create_stage("VIP")
    for cid in (funnel["anna"], funnel["boris"]):
        db.session.get(Customer, cid).stage_id = vip.id
    db.session.flush()

    with pytest.raises(FieldError) as refused:
        stages.delete_stage(vip, None, None)
    assert refused.value.field == "move_to"
    with pytest.raises(FieldError):
        stages.delete_stage(vip, vip.id, None)

    regular = funnel["stage"]["regular"]
    assert stages.delete_stage(vip, regular, db.session.get(User, owner.id)) == 2
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Stage, vip.id) is None
    assert {db.session.get(Customer, cid).stage_id for cid in (funnel["anna"], funnel["boris"])} == {regular}
    moves = db.session.scalars(db.select(Interaction).where(Interaction.kind == Kind.STAGE,
                                                            Interaction.data["deleted"].as_boolean())).all()
    assert sorted(m.customer_id for m in moves) == sorted([funnel["anna"], funnel["boris"]])
    assert moves[0].data == {"before": vip.id, "after": regular, "deleted": True}
    assert moves[0].user_id == owner.id
    assert [s.position for s in stages.ordered()] == list(range(9))


def test_an_empty_stage_is_removed_without_asking(ctx, funnel):
    empty = stages.create_stage("Empty")
    assert stages.delete_stage(empty, None, None) == 0
    assert db.session.get(Stage, empty.id) is None


def test_keyed_stages_cannot_be_removed(ctx, funnel):
    with pytest.raises(FieldError) as refused:
        stages.delete_stage(db.session.get(Stage, funnel["stage"]["regular"]), funnel["stage"]["new"], None)
    assert refused.value.field == "stage"
    assert db.session.get(Stage, funnel["stage"]["regular"]) is not None


# --- the board (views) -----------------------------------------------------------------------------

def test_the_board_shows_every_stage_with_its_cards_figures_and_totals(owner_client, funnel):
    html = owner_client.get("/funnel").get_data(as_text=True)
    names = re.findall(r'<h2 id="title-\d+">([^<]+)</h2>', html)
    assert names == ["New", "First purchase", "Repeat", "Regular", "Lapsing", "Lapsed", "In reactivation",
                     "Returned", "Inactive"]
    new = _head(html, funnel["stage"]["new"])
    assert "2 customers" in new
    assert "$170.00" in new  # LTV of Anna and Boris
    assert "1 customer<" in _head(html, funnel["stage"]["lapsed"])
    anna = html[html.index(f'id="card-{funnel["anna"]}"'):]
    assert "Anna Ivanova" in anna[:600] and "$120.00" in anna[:600] and "days ago" in anna[:600]
    assert "no orders" in html[html.index(f'id="card-{funnel["clara"]}"'):][:600]
    assert html.count("No customers at this stage.") == 9  # shown by CSS only when a column is empty
    assert "Sortable-1.15.7.min.js" in html and "board.js" in html


def test_a_name_with_markup_is_shown_as_text(owner_client, app, funnel):
    with app.app_context():
        customer("<svg onload=alert(1)>")
        db.session.commit()
    html = owner_client.get("/funnel").get_data(as_text=True)
    assert "<svg onload" not in html
    assert "&lt;svg onload=alert(1)&gt;" in html


def test_a_renamed_stage_shows_its_own_name_and_a_default_one_its_translation(app, manager_client, funnel):
    with app.app_context():
        db.session.get(Stage, funnel["stage"]["repeat"]).name = "Came twice"
        db.session.commit()
    with app.app_context():
        db.session.get(User, db.session.scalar(db.select(User.id).where(User.role == "manager"))).locale = "ru"
        db.session.commit()
    html = manager_client.get("/funnel").get_data(as_text=True)
    assert ">Came twice</h2>" in html
    assert ">Первая покупка</h2>" in html


def test_a_long_column_shows_a_page_and_a_more_button_for_the_next(app, owner_client, funnel):
    with app.app_context():
        for i in range(stages.COLUMN_SIZE + 5):
            c = customer(f"Lead {i:02d}")
            c.stage_id = funnel["stage"]["returned"]
        db.session.commit()
    html = owner_client.get("/funnel").get_data(as_text=True)
    column = html[html.index(f'id="cards-{funnel["stage"]["returned"]}"'):]
    column = column[:column.index("</ol>")]
    assert column.count('<li class="card') == stages.COLUMN_SIZE
    link = re.search(r'hx-get="([^"]+)"', column[column.index('class="more"'):]).group(1).replace("&amp;", "&")
    more = owner_client.get(link, headers=HX).get_data(as_text=True)
    assert "<html" not in more
    assert more.count('<li class="card') == 5
    assert 'class="more"' not in more
    assert owner_client.get(link).status_code == 302  # a full page only on the board itself
    assert owner_client.get("/funnel/stages/999999/cards", headers=HX).status_code == 404


def test_a_move_from_the_menu_answers_with_the_card_for_its_new_column_and_both_headers(app, owner_client, funnel):
    new, regular = funnel["stage"]["new"], funnel["stage"]["regular"]
    response = owner_client.post("/funnel/move", data={"customer_id": funnel["anna"], "stage_id": regular},
                                 headers={**HX, "X-CSRFToken": _token(owner_client)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'hx-swap-oob="afterbegin:#cards-{regular}"' in html
    assert "autofocus" in html  # the keyboard's focus follows the card
    assert "Pinned" in html
    assert "1 customer<" in _head(html, new) and "$50.00" in _head(html, new)
    assert "1 customer<" in _head(html, regular) and "$120.00" in _head(html, regular)
    assert 'hx-swap-oob="true"' in _head(html, regular)
    anna = reload(app, Customer, funnel["anna"])
    assert (anna.stage_id, anna.stage_pinned) == (regular, True)


def test_a_dropped_card_is_answered_in_place(owner_client, funnel):
    response = owner_client.post("/funnel/move",
                                 data={"customer_id": funnel["anna"], "stage_id": funnel["stage"]["regular"],
                                       "placed": "1"},
                                 headers={**HX, "X-CSRFToken": _token(owner_client)})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith(f'<li class="card pinned" id="card-{funnel["anna"]}"')
    assert "hx-swap-oob=\"afterbegin" not in html


def test_the_move_is_on_the_customer_card_timeline(owner_client, funnel):
    owner_client.post("/funnel/move", data={"customer_id": funnel["anna"], "stage_id": funnel["stage"]["regular"]},
                      headers={**HX, "X-CSRFToken": _token(owner_client)})
    assert "Stage: New → Regular" in owner_client.get(f"/customers/{funnel['anna']}").get_data(as_text=True)


def test_a_move_without_htmx_goes_back_to_the_board_with_its_filter(app, owner_client, funnel):
    response = owner_client.post("/funnel/move",
                                 data={"customer_id": funnel["anna"], "stage_id": funnel["stage"]["regular"],
                                       "manager": "mine", "csrf_token": _token(owner_client)})
    assert response.status_code == 302
    assert response.location == "/funnel?manager=mine"
    assert reload(app, Customer, funnel["anna"]).stage_id == funnel["stage"]["regular"]


def test_a_move_without_the_csrf_token_is_refused(app, owner_client, funnel):
    response = owner_client.post("/funnel/move", data={"customer_id": funnel["anna"],
                                                       "stage_id": funnel["stage"]["regular"]}, headers=HX)
    assert response.status_code == 400
    assert reload(app, Customer, funnel["anna"]).stage_id == funnel["stage"]["new"]


@pytest.mark.parametrize("path, data", [
    ("/funnel/move", {"customer_id": "{anna}", "stage_id": "999999"}),
    ("/funnel/move", {"customer_id": "{anna}", "stage_id": "abc"}),
    ("/funnel/move", {"customer_id": "{anna}"}),
    ("/funnel/move", {"customer_id": "999999", "stage_id": "{regular}"}),
    ("/funnel/move", {"stage_id": "{regular}"}),
    ("/funnel/unpin", {"customer_id": "999999"}),
    ("/funnel/unpin", {}),
])
def test_unknown_customers_and_stages_are_404_not_500(app, owner_client, funnel, path, data):
    values = {"anna": funnel["anna"], "regular": funnel["stage"]["regular"]}
    response = owner_client.post(path, data={k: v.format(**values) for k, v in data.items()},
                                 headers={**HX, "X-CSRFToken": _token(owner_client)})
    assert response.status_code == 404
    assert reload(app, Customer, funnel["anna"]).stage_id == funnel["stage"]["new"]


@pytest.mark.parametrize("path", [
    "/funnel?manager=99999999999999999999999", "/funnel?manager=-1", "/funnel?manager=%00",
    "/funnel/stages/{new}/cards?after=WyJ2YWx1ZXMiLCJhYmMiLDVd",  # ["values","abc",5]
    "/funnel/stages/{new}/cards?after=WyJudWxscyIsbnVsbCwxMDAwMDAwMDAwMDAwMDAwMDAwMDAwMF0",  # an id past 64 bits
    "/funnel/stages/{new}/cards?after=%%%",
])
def test_nonsense_in_the_url_is_ignored_not_500(owner_client, funnel, path):
    response = owner_client.get(path.format(new=funnel["stage"]["new"]), headers=HX)
    assert response.status_code == 200
    assert "Anna Ivanova" in response.get_data(as_text=True)


def test_ids_past_64_bits_are_404_not_500(owner_client, funnel):
    huge = "9" * 25
    assert owner_client.get(f"/funnel/stages/{huge}/cards", headers=HX).status_code == 404
    response = owner_client.post("/funnel/move", data={"customer_id": huge, "stage_id": huge},
                                 headers={**HX, "X-CSRFToken": _token(owner_client)})
    assert response.status_code == 404


def test_unpin_from_the_card_menu(app, owner_client, funnel):
    headers = {**HX, "X-CSRFToken": _token(owner_client)}
    owner_client.post("/funnel/move", data={"customer_id": funnel["anna"], "stage_id": funnel["stage"]["regular"]},
                      headers=headers)
    html = owner_client.post("/funnel/unpin", data={"customer_id": funnel["anna"]},
                             headers=headers).get_data(as_text=True)
    assert html.lstrip().startswith(f'<li class="card" id="card-{funnel["anna"]}"')
    assert reload(app, Customer, funnel["anna"]).stage_pinned is False


def test_a_manager_sees_everyone_by_default_and_can_show_only_theirs(app, manager_client, manager, funnel):
    with app.app_context():
        db.session.get(Customer, funnel["boris"]).manager_id = manager.id
        db.session.commit()
    everyone = manager_client.get("/funnel").get_data(as_text=True)
    assert "Anna Ivanova" in everyone and "Boris Petrov" in everyone
    mine = manager_client.get("/funnel?manager=mine", headers=HX).get_data(as_text=True)
    assert "<html" not in mine
    assert "Boris Petrov" in mine and "Anna Ivanova" not in mine
    assert "1 customer<" in _head(mine, funnel["stage"]["new"])
    assert 'name="manager" value="mine"' in mine  # moves keep the filter for the headers they return
    assert manager_client.get("/funnel?manager=nonsense").status_code == 200


# --- the owner's stage page (views) ----------------------------------------------------------------

def test_the_stage_page_is_the_owners(manager_client, funnel):
    assert manager_client.get("/settings/stages").status_code == 403
    token = page_token(manager_client, "/funnel")
    response = manager_client.post("/settings/stages", data={"name": "Mine", "csrf_token": token})
    assert response.status_code == 403
    assert "Edit stages" not in manager_client.get("/funnel").get_data(as_text=True)


def test_the_stage_page_lists_stages_with_counts_and_says_which_cannot_be_removed(owner_client, funnel):
    html = owner_client.get("/settings/stages").get_data(as_text=True)
    assert "can be renamed and reordered, not removed" in html
    assert html.count("Automatic: kept") == 9
    assert html.count('class="stage-delete"') == 0  # every default stage is keyed
    assert "Edit stages" in owner_client.get("/funnel").get_data(as_text=True)


def test_owner_adds_renames_reorders_and_removes_a_stage(app, owner_client, funnel):
    token = _token(owner_client)
    response = owner_client.post("/settings/stages", data={"name": "VIP", "csrf_token": token})
    assert response.status_code == 303
    with app.app_context():
        vip = db.session.scalar(db.select(Stage).where(Stage.name == "VIP"))
        assert vip.position == 9
        vip_id = vip.id
    owner_client.post(f"/settings/stages/{vip_id}/name", data={"name": "Very important", "csrf_token": token})
    owner_client.post(f"/settings/stages/{vip_id}/position", data={"direction": "up", "csrf_token": token})
    with app.app_context():
        assert [s.name for s in stages.ordered()][-2:] == ["Very important", "Inactive"]

    html = owner_client.get("/settings/stages").get_data(as_text=True)
    assert html.count('class="stage-delete"') == 1
    assert "hx-confirm=" in html

    with app.app_context():
        db.session.get(Customer, funnel["anna"]).stage_id = vip_id
        db.session.commit()
    refused = owner_client.post(f"/settings/stages/{vip_id}/delete", data={"csrf_token": token})
    assert refused.status_code == 422
    assert "Choose the stage its customers move to." in refused.get_data(as_text=True)
    done = owner_client.post(f"/settings/stages/{vip_id}/delete",
                             data={"move_to": str(funnel["stage"]["returned"]), "csrf_token": token})
    assert done.status_code == 303
    assert reload(app, Stage, vip_id) is None
    assert reload(app, Customer, funnel["anna"]).stage_id == funnel["stage"]["returned"]


@pytest.mark.parametrize("name, message", [
    ("", "Enter the stage&#39;s name."),
    ("x" * 200, "Use at most 80 characters."),
    ("regular", "Another stage is already called “regular”."),
])
def test_a_bad_name_comes_back_on_the_field_with_what_was_typed(owner_client, funnel, name, message):
    token = _token(owner_client)
    for path in ("/settings/stages", f"/settings/stages/{funnel['stage']['lapsed']}/name"):
        response = owner_client.post(path, data={"name": name, "csrf_token": token})
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html
        assert 'aria-invalid="true"' in html
        assert f'value="{name}"' in html


def test_sending_back_a_default_stages_translated_name_does_not_store_the_translation(app, owner, funnel):
    with app.app_context():
        db.session.get(User, owner.id).locale = "ru"
        db.session.commit()
    client = app.test_client()
    from tests.conftest import sign_in

    sign_in(client, owner.email)
    token = _token(client)
    stage_id = funnel["stage"]["first_purchase"]
    assert 'value="Первая покупка"' in client.get("/settings/stages").get_data(as_text=True)
    assert client.post(f"/settings/stages/{stage_id}/name",
                       data={"name": "Первая покупка", "csrf_token": token}).status_code == 303
    assert reload(app, Stage, stage_id).name == "First purchase"


def test_keyed_stages_are_refused_removal_and_bad_requests_are_not_500(app, owner_client, funnel):
    token = _token(owner_client)
    regular = funnel["stage"]["regular"]
    refused = owner_client.post(f"/settings/stages/{regular}/delete",
                                data={"move_to": str(funnel["stage"]["new"]), "csrf_token": token})
    assert refused.status_code == 422
    assert "cannot be removed" in refused.get_data(as_text=True)
    assert reload(app, Stage, regular) is not None
    assert owner_client.post(f"/settings/stages/{regular}/position",
                             data={"direction": "sideways", "csrf_token": token}).status_code == 400
    for path in ("/settings/stages/999999/name", "/settings/stages/999999/position", "/settings/stages/999999/delete"):
        assert owner_client.post(path, data={"name": "x", "direction": "up", "csrf_token": token}).status_code == 404
