from gatedcells.cli import main

raise SystemExit(main())
