-- Reference: the per-account features of tasks/features.py as ONE hand-written DuckDB query.
--
-- Run on a read-only connection to the demo's crm.duckdb (tables accounts, orders, tickets);
-- surveys and product events are read straight from the files. benchmarks/worker.py fills in
-- $as_of (ISO date), $surveys and $events (globs). Windows end with the as-of day
-- (timestamps < as_of + 1 day) and start at 00:00 of as_of - (days - 1), as in features.py:
-- usage 30 days (and the 30 before it, and 90 for the extra 90-day columns), tickets 90,
-- surveys 180, orders 365. Unlike the pipeline, nothing is validated or quarantined here,
-- except that survey rows off their scale or not numbers are left out (the demo plants some),
-- and rows of unknown accounts drop out by the join with the active accounts.
with
active as (
    -- customers on the as-of date: started, and not churned by then
    select account_id, seats, renewal_date
    from accounts
    where (contract_start is null or contract_start <= date '$as_of')
      and not coalesce(
          churned_at <= date '$as_of' or (churned_at is null and status = 'churned'), false)
),
events as (
    select
        account_id,
        user_id,
        event,
        ts::date as day,
        ts >= date '$as_of' - 29 as cur,
        ts >= date '$as_of' - 59 as in_60d
    from read_parquet('$events')
    where ts >= date '$as_of' - 89 and ts < date '$as_of' + 1
),
-- DuckDB runs several DISTINCT aggregates in one GROUP BY far slower than one each (about 2x
-- here), so each distinct count gets its own small aggregate, joined back by account.
usage_counts as (
    select
        account_id,
        count(*) filter (where cur) as events_30d,
        count(*) filter (where in_60d and not cur) as events_prev_30d,
        count(distinct day) as active_days_90d
    from events
    group by account_id
),
users_90d as (
    select account_id, count(distinct user_id) as active_users_90d
    from events
    group by account_id
),
users_30d as (
    select account_id, count(distinct user_id) as active_users_30d
    from events
    where cur
    group by account_id
),
days_30d as (
    select account_id, count(distinct day) as active_days_30d
    from events
    where cur
    group by account_id
),
user_days_30d as (
    -- the sum over days of daily active users = distinct (user, day) pairs
    select account_id, count(distinct (user_id, day)) as user_days_30d
    from events
    where cur
    group by account_id
),
breadth_30d as (
    select account_id, count(distinct event) as feature_breadth_30d
    from events
    where cur
    group by account_id
),
usage as (
    select
        account_id,
        coalesce(u30.active_users_30d, 0) as active_users_30d,
        coalesce(d30.active_days_30d, 0) as active_days_30d,
        u90.active_users_90d,
        c.active_days_90d,
        coalesce(b.feature_breadth_30d, 0) as feature_breadth_30d,
        c.events_30d,
        c.events_prev_30d,
        ud.user_days_30d
    from usage_counts c
    join users_90d u90 using (account_id)
    left join users_30d u30 using (account_id)
    left join days_30d d30 using (account_id)
    left join user_days_30d ud using (account_id)
    left join breadth_30d b using (account_id)
),
support as (
    select
        account_id,
        count(*) filter (where opened_at >= date '$as_of' - 89) as tickets_90d,
        count(*) filter (
            where priority in ('high', 'urgent')
              and not (resolved_at is not null and resolved_at < date '$as_of' + 1)
        ) as open_urgent_tickets,
        median(epoch(resolved_at - opened_at) / 3600.0) filter (
            where resolved_at >= date '$as_of' - 89 and resolved_at < date '$as_of' + 1
        ) as median_resolution_hours
    from tickets
    where opened_at < date '$as_of' + 1
    group by account_id
),
responses as (
    -- the rows the survey suite would accept: a known survey, a number on its scale, a time
    select *
    from (
        select
            "Response ID" as response_id,
            "Account" as account_id,
            lower(trim("Survey Type")) as survey,
            try_cast("Score" as double) as score,
            try_cast("Submitted" as timestamp) as submitted_at,
            coalesce("Respondent", "Response ID") as who
        from read_csv('$surveys', header = true, union_by_name = true, all_varchar = true)
    )
    where submitted_at >= date '$as_of' - 179
      and submitted_at < date '$as_of' + 1
      and (
          (survey = 'nps' and score between 0 and 10)
          or (survey = 'csat' and score between 1 and 5)
          or (survey = 'ces' and score between 1 and 7)
      )
),
nps_latest as (
    -- each respondent's latest NPS answer in the window
    select account_id, arg_max(score, (submitted_at, response_id)) as score
    from responses
    where survey = 'nps'
    group by account_id, who
),
nps as (
    select
        account_id,
        (count(*) filter (where score >= 9) - count(*) filter (where score <= 6)) * 100.0
            / count(score) as nps_account,
        count(*) as nps_respondents
    from nps_latest
    group by account_id
),
surveys as (
    select
        account_id,
        count(*) filter (where survey = 'csat' and score >= 4) * 100.0
            / nullif(count(score) filter (where survey = 'csat'), 0) as csat_pct,
        avg(score) filter (where survey = 'ces') as ces_mean,
        count(*) as survey_responses
    from responses
    group by account_id
),
signed_orders as (
    select
        account_id,
        ordered_at,
        amount,
        cost,
        coalesce(kind, 'order') = 'refund' as is_refund,
        case when coalesce(kind, 'order') = 'refund' then -amount else amount end as signed
    from orders
    where ordered_at < date '$as_of' + 1
),
spend as (
    select
        account_id,
        count(*) filter (where not is_refund and ordered_at >= date '$as_of' - 364) as orders_365d,
        avg(amount) filter (
            where not is_refund and ordered_at >= date '$as_of' - 364) as avg_order_value,
        coalesce(sum(signed) filter (where ordered_at >= date '$as_of' - 364), 0) as spend_365d,
        coalesce(sum(signed) filter (where ordered_at >= date '$as_of' - 89), 0) as spend_90d,
        coalesce(sum(signed) filter (
            where ordered_at >= date '$as_of' - 179 and ordered_at < date '$as_of' - 89
        ), 0) as spend_prev_90d,
        max(ordered_at) filter (where not is_refund) as last_order,
        count(cost) filter (where ordered_at >= date '$as_of' - 364) as costed_365d,
        coalesce(sum(cost) filter (where ordered_at >= date '$as_of' - 364), 0) as cost_365d
    from signed_orders
    group by account_id
)
select
    a.account_id,
    coalesce(u.active_users_30d, 0) as active_users_30d,
    coalesce(u.active_days_30d, 0) as active_days_30d,
    coalesce(u.active_users_90d, 0) as active_users_90d,
    coalesce(u.active_days_90d, 0) as active_days_90d,
    coalesce(u.feature_breadth_30d, 0) as feature_breadth_30d,
    coalesce(u.events_30d, 0) as events_30d,
    coalesce(u.events_prev_30d, 0) as events_prev_30d,
    u.events_30d / nullif(u.active_users_30d, 0) as events_per_active_user_30d,
    u.user_days_30d / 30 / nullif(u.active_users_30d, 0) as stickiness,
    coalesce(u.active_users_30d, 0) / case when a.seats > 0 then a.seats end
        as license_utilisation,
    case when u.events_prev_30d > 0 then u.events_30d / u.events_prev_30d end as activity_trend,
    coalesce(t.tickets_90d, 0) as tickets_90d,
    coalesce(t.open_urgent_tickets, 0) as open_urgent_tickets,
    t.median_resolution_hours,
    coalesce(t.tickets_90d, 0) / case when a.seats > 0 then a.seats end as tickets_per_seat_90d,
    n.nps_account,
    n.nps_respondents,
    s.csat_pct,
    s.ces_mean,
    coalesce(s.survey_responses, 0) as survey_responses,
    coalesce(o.orders_365d, 0) as orders_365d,
    o.avg_order_value,
    o.spend_365d,
    o.spend_90d,
    o.spend_prev_90d,
    case when o.spend_prev_90d > 0 then o.spend_90d / o.spend_prev_90d end as spend_trend,
    case when o.costed_365d > 0 then o.spend_365d - o.cost_365d end as profit_365d,
    (date '$as_of' - o.last_order::date)::double as days_since_last_order,
    (a.renewal_date - date '$as_of') as days_to_renewal
from active a
left join usage u using (account_id)
left join support t using (account_id)
left join nps n using (account_id)
left join surveys s using (account_id)
left join spend o using (account_id)
order by a.account_id
