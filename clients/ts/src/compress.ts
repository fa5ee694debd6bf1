// Inflating zlib payloads with the platform's DecompressionStream
// ("deflate" is the zlib format of RFC 1950). Browsers have no zstd, so a
// browser's hello accepts zlib or nothing.

/** Reports whether this platform can inflate zlib. */
export function canInflate(): boolean {
  return typeof (globalThis as { DecompressionStream?: unknown }).DecompressionStream === "function";
}

/** Inflates a zlib stream; rejects when it is malformed or inflates past max bytes. */
export async function inflateZlib(data: Uint8Array, max: number): Promise<Uint8Array> {
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  const written = writer.write(data as Uint8Array<ArrayBuffer>).then(() => writer.close());
  written.catch(() => {}); // the reader reports the same error
  const reader = ds.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new Error(`inflates past ${max} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
