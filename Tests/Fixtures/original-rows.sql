-- A small installation of the original Seed Scheduler, as its own code leaves rows (Django
-- saves, djcelery's get_or_create in Schedule's pre_save). psql variable :receiver is the
-- test receiver's base URL. Times are relative to now, so that one interval schedule is
-- due seconds after the import.
SET TIME ZONE 'America/Sao_Paulo';  -- the original's connections may use any; timestamptz keeps the instant

INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) VALUES
    (1, '!', true, 'ops', 'Olu', 'Ops', 'ops@old.example.org', true, true, '2016-03-15 14:16:00+02'),
    (2, '!', false, 'app', 'App', 'Service', 'app@old.example.org', false, true, '2016-04-01 09:00:00+02'),
    (3, '!', false, 'legacy', '', '', '', false, true, '2017-01-01 00:00:00+00'),
    (4, '!', false, 'gone', '', '', 'gone@old.example.org', false, false, '2017-02-01 00:00:00+00'),
    (5, '!', false, 'app-copy', '', '', 'APP@old.example.org', false, true, '2018-01-01 00:00:00+00');
SELECT setval('auth_user_id_seq', 5);

INSERT INTO authtoken_token (key, created, user_id) VALUES
    ('0a1b2c3d4e5f60718293a4b5c6d7e8f901234567', '2016-03-15 14:17:00+02', 1),
    ('9f8e7d6c5b4a39281706f5e4d3c2b1a098765432', '2016-04-01 09:01:00+02', 2),
    ('11112222333344445555666677778888aaaabbbb', '2017-01-01 00:01:00+00', 3),
    ('ccccddddeeeeffff0000111122223333444455aa', '2017-02-01 00:01:00+00', 4),
    ('a token with spaces cannot be a header', '2018-01-01 00:01:00+00', 5);

INSERT INTO auth_group (id, name) VALUES (1, 'operators');
INSERT INTO auth_user_groups (id, user_id, group_id) VALUES (1, 1, 1);

INSERT INTO djcelery_crontabschedule (id, minute, hour, day_of_week, day_of_month, month_of_year) VALUES
    (1, '0', '9', 'mon', '*', '*'),
    (2, '*/5', '*', '*', '*', '*'),
    (3, '61', '*', '*', '*', '*');
INSERT INTO djcelery_intervalschedule (id, every, period) VALUES (1, 1, 'minutes'), (2, 2, 'hours');

INSERT INTO scheduler_schedule (id, frequency, triggered, cron_definition, interval_definition, endpoint, auth_token, payload,
    next_send_at, enabled, updated_at, created_at, celery_cron_definition_id, celery_interval_definition_id, created_by_id,
    updated_by_id, last_run) VALUES
    -- Weekly, Monday at 09:00 UTC, just sent, with a nested payload (jsonb keeps its keys in
    -- its own order).
    ('11111111-1111-4111-8111-111111111111', NULL, 40, '0 9 * * mon', NULL, :'receiver' || '/weekly', 'weekly-token',
     '{"message": {"to": ["+27820000000"], "body": "Hello"}, "kind": "reminder"}', now() + interval '3 days', true,
     now() - interval '2 days', now() - interval '300 days', 1, NULL, 2, 2, now()),
    -- Every minute, last sent 57 s ago: due 3 s from now. Its payload has nested keys, a
    -- fraction, a non-ASCII character and an exponent.
    ('22222222-2222-4222-8222-222222222222', NULL, 1000, NULL, '1 minutes', :'receiver' || '/due', 'due-token',
     '{"zeta": 1, "alpha": {"b": [1, 2.50, "café"], "a": null}, "big": 1E+3}', now() + interval '3 seconds', true,
     now() - interval '1 day', now() - interval '100 days', NULL, 1, 2, 2, now() - interval '57 seconds'),
    -- Once (frequency 1), every five minutes, never run yet.
    ('33333333-3333-4333-8333-333333333333', 1, 0, '*/5 * * * *', NULL, :'receiver' || '/once', NULL, '{}', NULL, true,
     now() - interval '1 hour', now() - interval '1 hour', 2, NULL, 2, 2, NULL),
    -- Disabled, every two hours, the admin's.
    ('44444444-4444-4444-8444-444444444444', NULL, 3, NULL, '2 hours', :'receiver' || '/paused', NULL, NULL, NULL, false,
     now() - interval '10 days', now() - interval '20 days', NULL, 2, 1, 1, now() - interval '11 days'),
    -- A crontab this service cannot read (djcelery took it).
    ('55555555-5555-4555-8555-555555555555', NULL, 0, '61 * * * *', NULL, :'receiver' || '/broken', NULL, '{"n": 5}', NULL, true,
     now() - interval '5 days', now() - interval '5 days', 3, NULL, 2, 2, NULL),
    -- An endpoint the egress guard refuses (cloud metadata).
    ('66666666-6666-4666-8666-666666666666', NULL, 0, NULL, '1 minutes', 'http://169.254.169.254/latest/meta-data', NULL, '{}',
     NULL, true, now() - interval '5 days', now() - interval '5 days', NULL, 1, 2, 2, NULL),
    -- Only djcelery's crontab: the original's beat ran it from there.
    ('77777777-7777-4777-8777-777777777777', NULL, 2, NULL, NULL, :'receiver' || '/legacy', NULL, '{"legacy": true}', NULL, true,
     now() - interval '400 days', now() - interval '400 days', 2, NULL, 3, 3, now() - interval '3 minutes');

INSERT INTO rest_hooks_hook (id, created, updated, event, target, user_id) VALUES
    (1, now() - interval '200 days', now() - interval '200 days', 'schedule.added', :'receiver' || '/hook', 2),
    (2, now() - interval '200 days', now() - interval '200 days', 'schedule.exploded', :'receiver' || '/hook', 1);

INSERT INTO scheduler_schedulefailure (id, task_id, initiated_at, reason, schedule_id) VALUES
    (1, 'aaaaaaaa-0000-4000-8000-000000000001', now() - interval '3 hours',
     '500 Server Error: Internal Server Error for url: ' || :'receiver' || '/weekly', '11111111-1111-4111-8111-111111111111');
