"""When the daemon materializes an asset by itself: the declarative automation conditions.

Every partition counts, not only the latest: a backfilled day, a corrected re-drop of an old day
and a day whose facts a later load completed (a fix-up) all bring their downstream partitions up
to date. The gate is per partition: a day waits while any of its upstream partitions has a failed
blocking check, and only that day waits.
"""

from dagster import AutomationCondition
from dagster._core.storage.tags import AUTOMATION_CONDITION_TAG

#: An upstream partition of this one has a failed blocking check (its latest result, for that partition).
UPSTREAM_CHECK_FAILED = AutomationCondition.any_deps_match(
    AutomationCondition.any_checks_match(AutomationCondition.check_failed(), blocking_only=True)
).with_label("upstream_blocking_check_failed")

#: An upstream partition changed, whichever run changed it. Dagster's ``any_deps_updated()`` ignores
#: updates made by a run that also targeted this asset; here they count: when a range run's staged
#: step fails a blocking check on one day, the run skips the warehouse for every day, and the good
#: days must still follow (the reset, ``_HANDLED``, ignores updates older than our own).
_DEPS_UPDATED = AutomationCondition.any_deps_match(
    AutomationCondition.newly_updated() | AutomationCondition.will_be_requested()).with_label("any_deps_updated")
#: Something to do: the partition is missing, or an upstream partition changed.
_NEWS = AutomationCondition.newly_missing() | _DEPS_UPDATED
#: When a partition counts as handled. Updated by a run automation did not launch (the sensor's, a
#: backfill, a click: they load a day's upstream in the same run), or requested by automation, unless
#: an upstream day changed since that request. Not Dagster's ``since_last_handled()``: there, the
#: update by automation's own run resets too, so an upstream day that lands while that run is in
#: flight (after its SQL read the old rows) never triggers the day again, and the mart stays stale.
_HANDLED = ((AutomationCondition.newly_requested() & ~_NEWS) | AutomationCondition.initial_evaluation()
            | (AutomationCondition.newly_updated()
               & ~AutomationCondition.executed_with_tags(tag_keys={AUTOMATION_CONDITION_TAG}))).with_label("handled")
_TRIGGER = _NEWS.since(_HANDLED)
_QUIET = ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()


def follows_checked_deps() -> AutomationCondition:
    """A daily asset: every day whose upstream days all exist, changed or not yet materialized, once
    nothing upstream runs and none of those days failed a blocking check. It is Dagster's ``eager()``
    without ``in_latest_time_window()``, gated on check results per day."""
    return (_TRIGGER & ~AutomationCondition.any_deps_missing() & _QUIET & ~UPSTREAM_CHECK_FAILED).with_label(
        "follows_checked_deps")


def follows_checked_days_of_month() -> AutomationCondition:
    """A monthly asset over daily parents: a month as soon as one of its days exists (a month is
    rarely complete), redone whenever one of its days changes."""
    some_day_present = AutomationCondition.any_deps_match(~AutomationCondition.missing())
    return (_TRIGGER & some_day_present & _QUIET & ~UPSTREAM_CHECK_FAILED).with_label("follows_checked_days_of_month")


def redraws_after_deps() -> AutomationCondition:
    """An unpartitioned report over partitioned parents: once after their updates, when none runs."""
    return (_DEPS_UPDATED.since(_HANDLED) & _QUIET).with_label("redraws_after_deps")
