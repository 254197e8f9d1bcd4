// Units as people read them. Devices send SenML unit names (RFC 8428 §12.1 and the
// secondary registry of RFC 8798): `Cel`, `m/s2`, `%RH`. The hub and its API keep them
// as sent; only the page shows `°C`, `m/s²`, `% RH`. A unit that is not in the table is
// shown as it came (always as text).

const READABLE = new Map(
  Object.entries({
    Cel: '°C',
    degC: '°C',
    degF: '°F',
    K: 'K',
    Ohm: 'Ω',
    kOhm: 'kΩ',
    ohm: 'Ω',
    m2: 'm²',
    m3: 'm³',
    l: 'L',
    'm/s2': 'm/s²',
    'm3/s': 'm³/s',
    'l/s': 'L/s',
    'l/min': 'L/min',
    'm3/h': 'm³/h',
    'W/m2': 'W/m²',
    'cd/m2': 'cd/m²',
    'kg/m3': 'kg/m³',
    'g/m3': 'g/m³',
    'ug/m3': 'µg/m³',
    'mg/m3': 'mg/m³',
    '%RH': '% RH',
    '%EL': '% battery',
    EL: 's left',
    '/': '',
    count: '',
    '1/s': '/s',
    '1/min': '/min',
    '1/h': '/h',
    'beat/min': 'bpm',
    'beats': 'beats',
    lat: '° lat',
    lon: '° lon',
    rad: 'rad',
    deg: '°',
    'rad/s': 'rad/s',
    'deg/s': '°/s',
    Bspl: 'dB SPL',
    'bit/s': 'bit/s',
    ms: 'ms',
    us: 'µs',
    uA: 'µA',
    uV: 'µV',
    uT: 'µT',
    ppm: 'ppm',
    ppb: 'ppb',
    VAh: 'VAh',
    kWh: 'kWh',
    Wh: 'Wh',
  }),
);

/** A unit for display: `Cel` → `°C`; unknown units unchanged; missing → ''. */
export function readableUnit(unit) {
  if (unit === null || unit === undefined) return '';
  return READABLE.get(unit) ?? unit;
}

/**
 * Shows a unit in a text element, with the unit as sent in its title when the two
 * differ (so `°C` still tells an operator the device says `Cel`).
 */
export function showUnit(e, unit) {
  const shown = readableUnit(unit);
  if (e.textContent !== shown) e.textContent = shown;
  const title = shown === (unit ?? '') ? '' : `SenML unit: ${unit}`;
  if (e.title !== title) e.title = title;
}
