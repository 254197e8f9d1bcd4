//! What is stored: rows, series, devices, extents and disk use (`telehub stats`).
