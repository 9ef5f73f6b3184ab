-- The assistant's answer to the handler question ("Who handles windows alerts?"). The question
-- depends only on the OS family, so its answer is reused for HANDLER_CACHE_SECS instead of being
-- asked again for every alert of a storm. `answer` is NULL when the assistant named nobody; a
-- question that could not be asked at all is not stored.
CREATE TABLE handler_answers (
    question TEXT PRIMARY KEY,
    answer   TEXT,
    asked_at TEXT NOT NULL
);
