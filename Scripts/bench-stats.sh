# bench-stats.sh - sourced by bench.sh and bench-monitor.sh (not run on its own).
#   stats FILE SCALE DECIMALS   "median (p25-p75)" of the numbers in FILE, each divided by SCALE
stats() {
    sort -g "$1" | awk -v s="$2" -v d="$3" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        f = "%." d "f"
        printf f " (" f "-" f ")", m / s, v[int((NR - 1) * 0.25) + 1] / s, v[int((NR - 1) * 0.75) + 1] / s }'
}
