"""Column names recognised without a mapping, one list per role, shared by every reader (and
by `recllm match`), most specific first: the first one a file has is taken."""

TITLE_COLS = ("title", "movie_title", "book_title", "product_title", "item_title", "item_name", "name")
