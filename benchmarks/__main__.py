"""`make bench`: every benchmark, each printing medians and ratios against its baseline."""

from benchmarks import bench_echo, bench_job, bench_local_spcs, bench_service_function

bench_echo.main()
bench_service_function.main()
bench_job.main()
bench_local_spcs.main()
