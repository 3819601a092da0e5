/**
 * Checkpoint layouts: a model writes its tensors once, as nested objects and arrays shaped like the
 * dotted keys of the file (`h: [{ attn: { c_attn: { weight } } }]` is `h.0.attn.c_attn.weight`),
 * with the shape its config implies at each leaf. The same layout gives the expected key set (the
 * missing / unexpected check) and the keys and shapes the loader reads.
 */

/** A leaf of a layout: one tensor, of this shape. */
export interface Shape {
  readonly shape: number[];
}

export type Layout = Shape | readonly Layout[] | { readonly [name: string]: Layout };

/** A tensor of the checkpoint: its key in the file and the shape the config implies. */
export interface TensorKey extends Shape {
  readonly name: string;
}

/** A layout with every leaf named by its key. */
export type Keys<L> = L extends Shape ? TensorKey : L extends readonly (infer E)[] ? Keys<E>[] : { [K in keyof L]: Keys<L[K]> };

export const tensor = (...shape: number[]): Shape => ({ shape });

const isShape = (l: Layout): l is Shape => 'shape' in l && Array.isArray((l as Shape).shape);

/** Names every tensor of `layout` by its path, joined with dots after `prefix`. */
export function keysOf<L extends Layout>(layout: L, prefix = ''): Keys<L> {
  const at = (l: Layout, path: string): unknown => {
    if (isShape(l)) return { name: path, shape: l.shape };
    if (Array.isArray(l)) return l.map((child: Layout, i) => at(child, `${path}${i}.`));
    return Object.fromEntries(Object.entries(l).map(([name, child]) => [name, at(child, isShape(child) ? path + name : `${path}${name}.`)]));
  };
  return at(layout, prefix) as Keys<L>;
}

/** Every key of a named layout, in layout order. */
export function keyNames(keys: unknown): string[] {
  if (Array.isArray(keys)) return keys.flatMap(keyNames);
  const k = keys as TensorKey | Record<string, unknown>;
  if (typeof k.name === 'string' && Array.isArray(k.shape)) return [k.name];
  return Object.values(k).flatMap(keyNames);
}
