// The Prometheus text format (version 0.0.4) as /metrics writes it, and the
// sums and histogram quantiles the dashboard draws from it.

/**
 * Parses the text format into a Map from metric name to its samples,
 * each {labels: {name: value}, value: number}. Comments and malformed lines
 * are skipped.
 */
export function parse(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (!sample) continue;
    let list = out.get(sample.name);
    if (!list) {
      list = [];
      out.set(sample.name, list);
    }
    list.push({ labels: sample.labels, value: sample.value });
  }
  return out;
}

function parseLine(line) {
  let i = 0;
  while (i < line.length && line[i] !== "{" && line[i] !== " ") i += 1;
  const name = line.slice(0, i);
  const labels = {};
  if (line[i] === "{") {
    i += 1;
    for (;;) {
      while (line[i] === " " || line[i] === ",") i += 1;
      if (line[i] === "}") {
        i += 1;
        break;
      }
      const eq = line.indexOf("=", i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let value = "";
      while (j < line.length && line[j] !== '"') {
        if (line[j] === "\\" && j + 1 < line.length) {
          const next = line[j + 1];
          value += next === "n" ? "\n" : next;
          j += 2;
        } else {
          value += line[j];
          j += 1;
        }
      }
      if (j >= line.length) return null;
      labels[key] = value;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (name === "" || rest.length === 0) return null;
  const value = number(rest[0]);
  if (Number.isNaN(value) && rest[0] !== "NaN") return null;
  return { name, labels, value };
}

function number(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function matches(labels, filter) {
  for (const [k, v] of Object.entries(filter)) {
    if (labels[k] !== v) return false;
  }
  return true;
}

/** The samples of `name` whose labels include `filter`. */
export function samples(metrics, name, filter = {}) {
  return (metrics.get(name) || []).filter((s) => matches(s.labels, filter));
}

/** The sum of the samples of `name` whose labels include `filter`. */
export function sum(metrics, name, filter = {}) {
  return samples(metrics, name, filter).reduce((acc, s) => acc + s.value, 0);
}

/** The sum of `name` grouped by the value of label `by`: {value: sum}. */
export function sumBy(metrics, name, by, filter = {}) {
  const out = {};
  for (const s of samples(metrics, name, filter)) {
    const key = s.labels[by];
    out[key] = (out[key] || 0) + s.value;
  }
  return out;
}

/**
 * The cumulative buckets of histogram `name` (its `_bucket` series), summed
 * over every series whose labels include `filter`: [{le, count}] by `le`.
 */
export function buckets(metrics, name, filter = {}) {
  const byLe = new Map();
  for (const s of samples(metrics, `${name}_bucket`, filter)) {
    const le = number(s.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + s.value);
  }
  return [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count }));
}

/** `now` minus `then`, bucket by bucket (the observations in between). */
export function bucketDelta(now, then) {
  const before = new Map(then.map((b) => [b.le, b.count]));
  return now.map((b) => ({ le: b.le, count: b.count - (before.get(b.le) || 0) }));
}

/**
 * The q-quantile of cumulative buckets, interpolated linearly inside the
 * bucket that holds it, as PromQL's histogram_quantile does. NaN with no
 * observations; the highest finite bound when it falls in the +Inf bucket.
 */
export function quantile(q, cumulative) {
  if (cumulative.length === 0) return NaN;
  const total = cumulative[cumulative.length - 1].count;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of cumulative) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lowerBound;
      const inBucket = b.count - lowerCount;
      if (inBucket <= 0) return b.le;
      return lowerBound + (b.le - lowerBound) * ((rank - lowerCount) / inBucket);
    }
    lowerBound = b.le;
    lowerCount = b.count;
  }
  return lowerBound;
}
