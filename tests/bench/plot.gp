# gnuplot -e "dir='build/bench/KVER'" tests/bench/plot.gp
set terminal pngcairo size 900,420 font ",10"
set output dir."/depth.png"
set title "4k QD1 ratio to dm-linear against chain depth (emulated guest)"
set xlabel "chain depth (layers)"; set ylabel "ratio to dm-linear"
set logscale x 2; set key outside right; set yrange [0:*]; set grid
# each series without its missing depths, so that its line joins the others
col(n) = sprintf("< awk '$%d != \"NaN\"' %s/depth.dat", n, dir)
plot col(2) u 1:2 w lp t "cowchain read", col(3) u 1:3 w lp t "qcow2 read", \
     col(4) u 1:4 w lp t "cowchain copy-up write", col(5) u 1:5 w lp t "qcow2 copy-up write", \
     col(6) u 1:6 w lp t "dm-snapshot origin write (x = #snapshots)"
set output dir."/firstwrite.png"
unset logscale x; set xlabel ""
set title "first-write and copy-up ratio to dm-linear by peer (emulated guest)"
set style data histograms; set style fill solid 0.8; set boxwidth 0.9
# report.py writes a column per row the run has, titled in the header line
N = int(system("awk 'NR == 2 {print NF}' ".dir."/firstwrite.dat")."0") / 10
if (N >= 3) plot for [i = 3:N] dir."/firstwrite.dat" u i:xtic(2) t columnheader(i)
