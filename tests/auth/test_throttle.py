"""Login throttle: per-user and per-address backoff, window, reset, bounded memory."""

from __future__ import annotations

from indunet.auth.throttle import LoginThrottle


def throttle(**kw: float) -> LoginThrottle:
    args = {"per_user": 3, "per_ip": 5, "window_s": 60, "base_s": 1, "max_s": 8, **kw}
    return LoginThrottle(**args)  # type: ignore[arg-type]


def test_user_backoff_doubles_and_caps() -> None:
    t = throttle()
    assert [t.failed("Ann", "1.1.1.1", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert t.failed("ann", "2.2.2.2", 0.0) == 1.0  # names are case-insensitive
    assert t.wait_s("ANN", "9.9.9.9", 0.5) == 0.5
    assert t.failed("ann", "3.3.3.3", 1.0) == 2.0
    assert t.failed("ann", "4.4.4.4", 3.0) == 4.0
    assert t.failed("ann", "5.5.5.5", 7.0) == 8.0
    assert t.failed("ann", "6.6.6.6", 15.0) == 8.0  # capped
    assert t.wait_s("bob", "7.7.7.7", 15.0) == 0.0  # other users and addresses unaffected


def test_address_limit_across_user_names() -> None:
    t = throttle()
    for i in range(4):
        assert t.failed(f"user{i}", "10.0.0.1", 0.0) == 0.0
    assert t.failed("user9", "10.0.0.1", 0.0) == 1.0
    assert t.wait_s("someone-new", "10.0.0.1", 0.0) == 1.0


def test_success_clears_the_user_but_not_the_address() -> None:
    t = throttle(per_user=1, per_ip=2)
    t.failed("ann", "1.1.1.1", 0.0)
    t.failed("ann", "1.1.1.1", 0.0)
    t.succeeded("ann", "1.1.1.1")
    assert t.wait_s("ann", "2.2.2.2", 0.0) == 0.0
    assert t.wait_s("ann", "1.1.1.1", 0.0) > 0


def test_old_failures_leave_the_window() -> None:
    t = throttle()
    t.failed("ann", "1", 0.0)
    t.failed("ann", "1", 0.0)
    assert t.failed("ann", "1", 61.0) == 0.0  # the first two are older than 60 s


def test_memory_stays_bounded_under_a_flood() -> None:
    t = throttle(max_tracked=100)
    for i in range(1000):
        t.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}", float(i * 100))
    assert len(t._tracks) <= 102
