# llem-report: the HTML report is checked in a real headless browser
# (internal/report/browser_test.go runs `chromium --headless`). The report itself
# embeds no fonts and names only generic families, so any installed sans/mono
# font renders it; fonts-dejavu-core is small and covers the symbols it uses
# (±, ≈, †, µ).
apt_install chromium fonts-dejavu-core
