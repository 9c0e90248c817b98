// The piscina task of the baseline: returns its argument.
export default function echo(v: number): number {
  return v;
}
