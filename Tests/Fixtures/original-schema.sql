-- The original Seed Scheduler's tables, as its migrations leave them in PostgreSQL (Django
-- 2.2, djangorestframework 3.9 with rest_framework.authtoken, django-celery 3.2,
-- django-rest-hooks 1.5; praekelt/seed-scheduler scheduler/migrations/0001-0006). Written
-- out as Django's `sqlmigrate` prints them: those versions do not install on this Python
-- (celery 3.1 uses `async` as a name). Only the tables the import reads, and those their
-- foreign keys need.

-- django.contrib.auth 0001-0011
CREATE TABLE auth_user (
    id serial PRIMARY KEY,
    password varchar(128) NOT NULL,
    last_login timestamp with time zone NULL,
    is_superuser boolean NOT NULL,
    username varchar(150) NOT NULL UNIQUE,
    first_name varchar(30) NOT NULL,
    last_name varchar(150) NOT NULL,
    email varchar(254) NOT NULL,
    is_staff boolean NOT NULL,
    is_active boolean NOT NULL,
    date_joined timestamp with time zone NOT NULL
);
CREATE TABLE auth_group (
    id serial PRIMARY KEY,
    name varchar(150) NOT NULL UNIQUE
);
CREATE TABLE auth_user_groups (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED,
    group_id integer NOT NULL REFERENCES auth_group (id) DEFERRABLE INITIALLY DEFERRED,
    UNIQUE (user_id, group_id)
);

-- rest_framework.authtoken 0001-0002
CREATE TABLE authtoken_token (
    key varchar(40) PRIMARY KEY,
    created timestamp with time zone NOT NULL,
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
);

-- djcelery 0001
CREATE TABLE djcelery_crontabschedule (
    id serial PRIMARY KEY,
    minute varchar(64) NOT NULL,
    hour varchar(64) NOT NULL,
    day_of_week varchar(64) NOT NULL,
    day_of_month varchar(64) NOT NULL,
    month_of_year varchar(64) NOT NULL
);
CREATE TABLE djcelery_intervalschedule (
    id serial PRIMARY KEY,
    every integer NOT NULL,
    period varchar(24) NOT NULL
);

-- rest_hooks 0001-0002
CREATE TABLE rest_hooks_hook (
    id serial PRIMARY KEY,
    created timestamp with time zone NOT NULL,
    updated timestamp with time zone NOT NULL,
    event varchar(64) NOT NULL,
    target varchar(255) NOT NULL,
    user_id integer NOT NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX rest_hooks_hook_event ON rest_hooks_hook (event);

-- scheduler 0001-0006
CREATE TABLE scheduler_schedule (
    id uuid PRIMARY KEY,
    frequency integer NULL,
    triggered integer NOT NULL,
    cron_definition varchar(500) NULL,
    interval_definition varchar(100) NULL,
    endpoint varchar(500) NOT NULL,
    auth_token varchar(500) NULL,
    payload jsonb NULL,
    next_send_at timestamp with time zone NULL,
    enabled boolean NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL,
    celery_cron_definition_id integer NULL REFERENCES djcelery_crontabschedule (id) DEFERRABLE INITIALLY DEFERRED,
    celery_interval_definition_id integer NULL REFERENCES djcelery_intervalschedule (id) DEFERRABLE INITIALLY DEFERRED,
    created_by_id integer NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED,
    updated_by_id integer NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED,
    last_run timestamp with time zone NULL
);
CREATE TABLE scheduler_queuetaskrun (
    id serial PRIMARY KEY,
    task_id uuid NOT NULL,
    started_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone NULL,
    celery_cron_definition_id integer NULL REFERENCES djcelery_crontabschedule (id) DEFERRABLE INITIALLY DEFERRED,
    celery_interval_definition_id integer NULL REFERENCES djcelery_intervalschedule (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE scheduler_schedulefailure (
    id serial PRIMARY KEY,
    task_id uuid NOT NULL,
    initiated_at timestamp with time zone NOT NULL,
    reason text NOT NULL,
    schedule_id uuid NOT NULL REFERENCES scheduler_schedule (id) DEFERRABLE INITIALLY DEFERRED
);
