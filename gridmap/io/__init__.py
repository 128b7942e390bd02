"""File formats that every layer reads and writes: spreadsheets (CSV, XLSX) and GDAL's vector files."""
