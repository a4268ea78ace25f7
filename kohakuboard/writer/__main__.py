from .memory import lean_allocators

lean_allocators()  # before numpy and pyarrow are imported

from .cli import main  # noqa: E402

raise SystemExit(main())
