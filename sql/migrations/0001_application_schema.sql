-- The reference application schema, shaped like Blue's data: a company has projects,
-- a project has lists, a list has todos; todos have assignees, tags, custom field
-- values, comments and checklists. Snake_case here; camelCase only in payloads.
-- Every table has a generated text id, a generated uid and UTC timestamps.

CREATE FUNCTION public.new_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT prefix || '_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 20)
$$;

CREATE FUNCTION public.new_uid() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT replace(gen_random_uuid()::text, '-', '')
$$;

CREATE TABLE public.companies (
    id text PRIMARY KEY DEFAULT public.new_id('cmp'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    slug text NOT NULL UNIQUE,
    name text NOT NULL,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.users (
    id text PRIMARY KEY DEFAULT public.new_id('usr'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    company_id text NOT NULL REFERENCES public.companies (id) ON DELETE CASCADE,
    email text NOT NULL UNIQUE,
    first_name text,
    last_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_company_id_idx ON public.users (company_id);

CREATE TABLE public.projects (
    id text PRIMARY KEY DEFAULT public.new_id('prj'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    company_id text NOT NULL REFERENCES public.companies (id) ON DELETE CASCADE,
    slug text NOT NULL,
    name text NOT NULL,
    description text,
    archived boolean NOT NULL DEFAULT false,
    category text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, slug)
);

CREATE TABLE public.project_users (
    id text PRIMARY KEY DEFAULT public.new_id('pju'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    project_id text NOT NULL REFERENCES public.projects (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    level text NOT NULL DEFAULT 'MEMBER',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, user_id)
);

CREATE INDEX project_users_user_id_idx ON public.project_users (user_id);

CREATE TABLE public.todo_lists (
    id text PRIMARY KEY DEFAULT public.new_id('lst'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    project_id text NOT NULL REFERENCES public.projects (id) ON DELETE CASCADE,
    title text NOT NULL,
    position double precision NOT NULL DEFAULT 65535,
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX todo_lists_project_id_idx ON public.todo_lists (project_id);

CREATE TABLE public.todos (
    id text PRIMARY KEY DEFAULT public.new_id('tdo'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_list_id text NOT NULL REFERENCES public.todo_lists (id) ON DELETE CASCADE,
    title text NOT NULL,
    html text,
    text text,
    position numeric NOT NULL DEFAULT 65535,
    archived boolean NOT NULL DEFAULT false,
    done boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    dued_at timestamptz,
    timezone text,
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX todos_todo_list_id_idx ON public.todos (todo_list_id);

CREATE TABLE public.todo_users (
    id text PRIMARY KEY DEFAULT public.new_id('tdu'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_id text NOT NULL REFERENCES public.todos (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (todo_id, user_id)
);

CREATE TABLE public.tags (
    id text PRIMARY KEY DEFAULT public.new_id('tag'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    project_id text NOT NULL REFERENCES public.projects (id) ON DELETE CASCADE,
    title text NOT NULL,
    color text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tags_project_id_idx ON public.tags (project_id);

CREATE TABLE public.todo_tags (
    id text PRIMARY KEY DEFAULT public.new_id('tdt'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_id text NOT NULL REFERENCES public.todos (id) ON DELETE CASCADE,
    tag_id text NOT NULL REFERENCES public.tags (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (todo_id, tag_id)
);

CREATE TABLE public.custom_fields (
    id text PRIMARY KEY DEFAULT public.new_id('cfd'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    project_id text NOT NULL REFERENCES public.projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    type text NOT NULL DEFAULT 'TEXT_SINGLE',
    position double precision NOT NULL DEFAULT 65535,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX custom_fields_project_id_idx ON public.custom_fields (project_id);

CREATE TABLE public.todo_custom_fields (
    id text PRIMARY KEY DEFAULT public.new_id('tcf'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_id text NOT NULL REFERENCES public.todos (id) ON DELETE CASCADE,
    custom_field_id text NOT NULL
        REFERENCES public.custom_fields (id) ON DELETE CASCADE,
    value jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (todo_id, custom_field_id)
);

CREATE TABLE public.comments (
    id text PRIMARY KEY DEFAULT public.new_id('cmt'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_id text NOT NULL REFERENCES public.todos (id) ON DELETE CASCADE,
    html text,
    text text,
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX comments_todo_id_idx ON public.comments (todo_id);

CREATE TABLE public.todo_checklists (
    id text PRIMARY KEY DEFAULT public.new_id('chk'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_id text NOT NULL REFERENCES public.todos (id) ON DELETE CASCADE,
    title text NOT NULL,
    position double precision NOT NULL DEFAULT 65535,
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX todo_checklists_todo_id_idx ON public.todo_checklists (todo_id);

CREATE TABLE public.todo_checklist_items (
    id text PRIMARY KEY DEFAULT public.new_id('cki'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_checklist_id text NOT NULL
        REFERENCES public.todo_checklists (id) ON DELETE CASCADE,
    title text NOT NULL,
    position double precision NOT NULL DEFAULT 65535,
    done boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    dued_at timestamptz,
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX todo_checklist_items_todo_checklist_id_idx
    ON public.todo_checklist_items (todo_checklist_id);
