"""When the daemon materializes an asset by itself: the declarative automation conditions.

Every partition counts, not only the latest: a backfilled day, a corrected re-drop of an old day
and a day whose facts a later load completed (a fix-up) all bring their downstream partitions up
to date. The gate is per partition: a day waits while any of its upstream partitions has a failed
blocking check, and only that day waits.
"""

from dagster import AutomationCondition
from dagster._core.storage.tags import AUTOMATION_CONDITION_TAG  # the tag on automation's runs (not exported)

#: An upstream partition of this one has a failed blocking check (its latest result, for that partition).
UPSTREAM_CHECK_FAILED = AutomationCondition.any_deps_match(
    AutomationCondition.any_checks_match(AutomationCondition.check_failed(), blocking_only=True)
).with_label("upstream_blocking_check_failed")

#: An upstream partition changed, whichever run changed it. Dagster's ``any_deps_updated()`` ignores
#: updates made by a run that also targeted this asset; here they count: when a range run's staged
#: step fails a blocking check on one day, the run skips the warehouse for every day, and the good
#: days must still follow.
_DEPS_UPDATED = AutomationCondition.any_deps_match(
    AutomationCondition.newly_updated() | AutomationCondition.will_be_requested()).with_label("any_deps_updated")
#: Something to do: the partition is missing, or an upstream partition changed.
_NEWS = AutomationCondition.newly_missing() | _DEPS_UPDATED
#: When a partition counts as handled: updated by a run automation did not launch (the sensor's, a UI
#: backfill of the graph: they load a day's upstream in the same run; a runless report), or requested
#: by automation, unless upstream news arrives in the tick that sees the request (``&``/``|`` keep no
#: timestamps, so a reset in the same tick would win). Not Dagster's ``since_last_handled()``: there,
#: automation's own update resets too, so an upstream day that lands while that run is in flight (after
#: its SQL read the old rows) never triggers the day again and the mart stays stale. Per partition:
#: ``all_new_updates_have_run_tags`` looks at each day's new materializations (``executed_with_tags``
#: would look at the asset's latest one only, the last day of a range run).
_HANDLED = ((AutomationCondition.newly_requested() & ~_NEWS) | AutomationCondition.initial_evaluation()
            | (AutomationCondition.newly_updated()
               & ~AutomationCondition.all_new_updates_have_run_tags(tag_keys={AUTOMATION_CONDITION_TAG}))
            ).with_label("handled")
_TRIGGER = _NEWS.since(_HANDLED)
_QUIET = ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()


def follows_checked_deps() -> AutomationCondition:
    """A daily asset: every day whose upstream days all exist, changed or not yet materialized, once
    nothing upstream runs and none of those days failed a blocking check. Like Dagster's ``eager()``
    without ``in_latest_time_window()``, gated on check results per day, with its own reset (``_HANDLED``)."""
    return (_TRIGGER & ~AutomationCondition.any_deps_missing() & _QUIET & ~UPSTREAM_CHECK_FAILED).with_label(
        "follows_checked_deps")


def follows_checked_days_of_month() -> AutomationCondition:
    """A monthly asset over daily parents: a month as soon as one of its days exists (a month is
    rarely complete), redone whenever one of its days changes."""
    some_day_present = AutomationCondition.any_deps_match(~AutomationCondition.missing())
    return (_TRIGGER & some_day_present & _QUIET & ~UPSTREAM_CHECK_FAILED).with_label("follows_checked_days_of_month")
