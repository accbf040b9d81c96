// The parts of hpack.js (no published types) that src/http2/hpack.ts uses: the bit-level decoder and
// the header table. Its stream-based Decompressor is not used.
declare module "hpack.js" {
  interface HpackDecoder {
    push(chunk: Buffer): void;
    isEmpty(): boolean;
    decodeBit(): number;
    decodeInt(): number;
    /** Bytes of the string literal (Huffman-decoded when it was coded). */
    decodeStr(): ArrayLike<number>;
  }
  interface HpackTableEntry {
    name: string;
    value: string;
    nameSize: number;
  }
  interface HpackTable {
    lookup(index: number): HpackTableEntry;
    add(name: string, value: string, nameSize: number, valueSize: number): void;
    updateSize(size: number): void;
  }
  const hpack: {
    decoder: { create(): HpackDecoder };
    table: { create(options: { maxSize: number }): HpackTable };
  };
  export default hpack;
}
