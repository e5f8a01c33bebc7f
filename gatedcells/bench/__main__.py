from gatedcells.bench import main

raise SystemExit(main())
