/*
 * fastpng: the grey lookup and the PNG encoder of the rendered-image path, in C (a Node-API addon).
 *
 * Why: on a 512x512 CT frame, zlib's deflate (Z_RLE, level 3) was half of a rendered request's CPU, and the
 * JavaScript table lookup and "up" filter most of the rest (bench/profile.ts). Z_RLE only ever finds runs of
 * the previous byte (distance 1), so its output is literals and runs coded with one dynamic Huffman code per
 * block. This file writes the same kind of stream directly: one pass filters a row, adds it to the Adler-32
 * and cuts it into literals and runs; each block of tokens then gets its own Huffman code (RFC 1951 3.2.7),
 * built with the Moffat-Katajainen in-place algorithm and limited to 15 bits. The bytes differ from zlib's but
 * the image is the same, losslessly: the tests inflate every output with zlib and compare the pixels.
 *
 * Each thread (main or render worker) loads its own instance of the addon; scratch memory is thread-local.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define BLOCK_TOKENS 16384 /* tokens per deflate block, as zlib at memLevel 8: each block adapts its own code */
#define MAX_BITS 15
#define LIT_CODES 286
#define CL_CODES 19

/* ------------------------------------------------------------------------------------------------ */
/* Tables: length 3..258 -> symbol 257..285 and its extra bits (RFC 1951 3.2.5); CRC-32 (PNG 5.3)     */

static uint16_t len_sym[259];
static uint8_t len_xbits[259];
static uint16_t len_xval[259];
static uint32_t crc_table[8][256];

static void init_tables(void) {
  static const uint16_t base[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
  static const uint8_t extra[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
  for (int s = 0; s < 29; s++) {
    int n = s == 28 ? 1 : 1 << extra[s];
    for (int k = 0; k < n; k++) {
      int len = base[s] + k;
      if (len > 258 || (len == 258 && s != 28)) continue; /* 258 is symbol 285 only */
      len_sym[len] = (uint16_t)(257 + s);
      len_xbits[len] = extra[s];
      len_xval[len] = (uint16_t)k;
    }
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[0][n] = c;
  }
  for (int t = 1; t < 8; t++)
    for (int n = 0; n < 256; n++) crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xff];
}

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  while (n >= 8) {
    uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^ crc_table[5][(a >> 16) & 0xff] ^ crc_table[4][a >> 24]
        ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8; n -= 8;
  }
  while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Huffman code lengths, limited to max_bits (the method of miniz's tdefl, after Moffat & Katajainen) */

typedef struct { uint32_t key; uint16_t sym; } SymFreq;

/*
 * Sorts n keys (frequency << 9 | symbol, below 2^32) ascending: least significant byte first, skipping a byte all
 * keys share. qsort with a comparison callback was a tenth of the encoder's time (CT 512: ~20 codes an image).
 */
static void radix_sort(uint32_t *a, uint32_t *tmp, int n) {
  uint32_t all_or = 0, all_and = ~0u;
  for (int i = 0; i < n; i++) { all_or |= a[i]; all_and &= a[i]; }
  for (int shift = 0; shift < 32; shift += 8) {
    if ((((all_or ^ all_and) >> shift) & 0xff) == 0) continue; /* the same byte in every key */
    int count[257] = { 0 };
    for (int i = 0; i < n; i++) count[((a[i] >> shift) & 0xff) + 1]++;
    for (int d = 0; d < 256; d++) count[d + 1] += count[d];
    for (int i = 0; i < n; i++) tmp[count[(a[i] >> shift) & 0xff]++] = a[i];
    memcpy(a, tmp, (size_t)n * sizeof a[0]);
  }
}

/* A[] sorted by ascending frequency; on return A[i].key is the code length of A[i].sym. */
static void minimum_redundancy(SymFreq *A, int n) {
  int root, leaf, next, avbl, used, dpth;
  if (n == 0) return;
  if (n == 1) { A[0].key = 1; return; }
  A[0].key += A[1].key; root = 0; leaf = 2;
  for (next = 1; next < n - 1; next++) {
    if (leaf >= n || A[root].key < A[leaf].key) { A[next].key = A[root].key; A[root++].key = (uint32_t)next; }
    else A[next].key = A[leaf++].key;
    if (leaf >= n || (root < next && A[root].key < A[leaf].key)) { A[next].key += A[root].key; A[root++].key = (uint32_t)next; }
    else A[next].key += A[leaf++].key;
  }
  A[n - 2].key = 0;
  for (next = n - 3; next >= 0; next--) A[next].key = A[A[next].key].key + 1;
  avbl = 1; used = dpth = 0; root = n - 2; next = n - 1;
  while (avbl > 0) {
    while (root >= 0 && (int)A[root].key == dpth) { used++; root--; }
    while (avbl > used) { A[next--].key = (uint32_t)dpth; avbl--; }
    avbl = 2 * used; dpth++; used = 0;
  }
}

/*
 * Code lengths for n symbols with frequencies freq[] (zero: unused), at most max_bits. At least two symbols get
 * a code (an unused one is given the rarest place if needed): a deflate code of one symbol is incomplete, which
 * inflate refuses for the code-length code.
 */
static void code_lengths(const uint32_t *freq, int n, int max_bits, uint8_t *lens) {
  SymFreq syms[LIT_CODES];
  uint32_t keys[LIT_CODES], tmp[LIT_CODES];
  int used = 0;
  /* Frequencies are at most a block's tokens (BLOCK_TOKENS), so frequency << 9 | symbol fits 32 bits. */
  for (int s = 0; s < n; s++) if (freq[s]) keys[used++] = freq[s] << 9 | (uint32_t)s;
  for (int s = 0; used < 2 && s < n; s++) if (!freq[s]) keys[used++] = 1u << 9 | (uint32_t)s;
  radix_sort(keys, tmp, used); /* by frequency, then symbol */
  for (int i = 0; i < used; i++) { syms[i].key = keys[i] >> 9; syms[i].sym = (uint16_t)(keys[i] & 511); }
  memset(lens, 0, (size_t)n);
  minimum_redundancy(syms, used);
  int count[64] = { 0 };
  for (int i = 0; i < used; i++) count[syms[i].key < 63 ? syms[i].key : 63]++;
  /* Enforce max_bits: move the overlong codes to max_bits, then lengthen shorter codes until Kraft's sum is 1. */
  for (int b = max_bits + 1; b < 64; b++) { count[max_bits] += count[b]; count[b] = 0; }
  uint32_t total = 0;
  for (int b = max_bits; b > 0; b--) total += (uint32_t)count[b] << (max_bits - b);
  while (total != (1u << max_bits)) {
    count[max_bits]--;
    for (int b = max_bits - 1; b > 0; b--) if (count[b]) { count[b]--; count[b + 1] += 2; break; }
    total--;
  }
  /* The most frequent symbols (the end of syms) take the shortest lengths. */
  for (int b = 1, j = used; b <= max_bits; b++)
    for (int k = count[b]; k > 0; k--) lens[syms[--j].sym] = (uint8_t)b;
}

/* Canonical codes (RFC 1951 3.2.2), bit-reversed for an LSB-first writer. */
static void canonical_codes(const uint8_t *lens, int n, uint16_t *codes) {
  uint16_t bl_count[MAX_BITS + 1] = { 0 }, next[MAX_BITS + 2];
  for (int s = 0; s < n; s++) bl_count[lens[s]]++;
  bl_count[0] = 0;
  uint16_t code = 0;
  for (int b = 1; b <= MAX_BITS; b++) { code = (uint16_t)((code + bl_count[b - 1]) << 1); next[b] = code; }
  for (int s = 0; s < n; s++) {
    int l = lens[s];
    if (!l) { codes[s] = 0; continue; }
    uint32_t c = next[l]++, r = 0;
    for (int k = 0; k < l; k++) { r = (r << 1) | (c & 1); c >>= 1; }
    codes[s] = (uint16_t)r;
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Bit writer, least significant bit first (RFC 1951 3.1.1)                                          */

typedef struct { uint8_t *out; size_t pos; uint64_t bits; int n; } Bits;

static inline void put_bits(Bits *w, uint32_t value, int count) {
  w->bits |= (uint64_t)value << w->n;
  w->n += count;
  if (w->n >= 32) {
    uint8_t *o = w->out + w->pos;
    o[0] = (uint8_t)w->bits; o[1] = (uint8_t)(w->bits >> 8); o[2] = (uint8_t)(w->bits >> 16); o[3] = (uint8_t)(w->bits >> 24);
    w->pos += 4; w->bits >>= 32; w->n -= 32;
  }
}

static void flush_bits(Bits *w) {
  while (w->n > 0) { w->out[w->pos++] = (uint8_t)w->bits; w->bits >>= 8; w->n -= 8; }
  w->n = 0; w->bits = 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Deflate blocks of literals and distance-1 runs                                                    */

/*
 * A token: a literal byte (0..255) or a run of the previous byte, 256 + length - 3 (length 3..258, distance 1).
 * freq counts tokens, not symbols: the 256 run tokens fold into the 29 length symbols when the block is written.
 */
#define TOKENS 512
#define EOB_TOKEN 512 /* end of block, and a bit string of none: appended by write_block only */
#define PAD_TOKEN 513
typedef struct {
  uint16_t tokens[BLOCK_TOKENS];
  int ntok;
  uint32_t freq[TOKENS];
  uint32_t freq2[256]; /* literals counted in pairs go half here: two counters of one value do not wait on each other */
} Block;

static const uint8_t CL_ORDER[CL_CODES] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };

static void write_block(Bits *w, Block *b, int final) {
  uint32_t lit_freq[LIT_CODES];
  uint8_t lit_len[LIT_CODES], cl_len[CL_CODES];
  uint16_t lit_code[LIT_CODES], cl_code[CL_CODES];
  for (int v = 0; v < 256; v++) lit_freq[v] = b->freq[v] + b->freq2[v];
  memset(lit_freq + 256, 0, (LIT_CODES - 256) * sizeof lit_freq[0]);
  for (int len = 3; len <= 258; len++) lit_freq[len_sym[len]] += b->freq[256 + len - 3];
  lit_freq[256] = 1; /* end of block */
  code_lengths(lit_freq, LIT_CODES, MAX_BITS, lit_len);
  canonical_codes(lit_len, LIT_CODES, lit_code);
  int hlit = LIT_CODES;
  while (hlit > 257 && !lit_len[hlit - 1]) hlit--;
  /* Distance code: symbols 0 (distance 1) and 1, one bit each, a complete code whether runs occur or not. */
  const int hdist = 2;

  /* The code lengths of both codes as one sequence, run-length coded with symbols 16, 17, 18 (3.2.7). */
  uint8_t all[LIT_CODES + 2];
  memcpy(all, lit_len, (size_t)hlit);
  all[hlit] = 1; all[hlit + 1] = 1;
  int total = hlit + hdist;
  uint8_t cl_sym[LIT_CODES + 2], cl_extra[LIT_CODES + 2];
  int ncl = 0;
  uint32_t cl_freq[CL_CODES] = { 0 };
  for (int i = 0; i < total;) {
    int l = all[i], run = 1;
    while (i + run < total && all[i + run] == l) run++;
    i += run;
    if (l == 0) {
      while (run >= 11) { int r = run < 138 ? run : 138; cl_sym[ncl] = 18; cl_extra[ncl++] = (uint8_t)(r - 11); run -= r; }
      if (run >= 3) { cl_sym[ncl] = 17; cl_extra[ncl++] = (uint8_t)(run - 3); run = 0; }
      while (run-- > 0) { cl_sym[ncl] = 0; cl_extra[ncl++] = 0; }
    } else {
      cl_sym[ncl] = (uint8_t)l; cl_extra[ncl++] = 0; run--;
      while (run >= 3) { int r = run < 6 ? run : 6; cl_sym[ncl] = 16; cl_extra[ncl++] = (uint8_t)(r - 3); run -= r; }
      while (run-- > 0) { cl_sym[ncl] = (uint8_t)l; cl_extra[ncl++] = 0; }
    }
  }
  for (int i = 0; i < ncl; i++) cl_freq[cl_sym[i]]++;
  code_lengths(cl_freq, CL_CODES, 7, cl_len);
  canonical_codes(cl_len, CL_CODES, cl_code);
  int hclen = CL_CODES;
  while (hclen > 4 && !cl_len[CL_ORDER[hclen - 1]]) hclen--;

  put_bits(w, final ? 1 : 0, 1);
  put_bits(w, 2, 2); /* dynamic Huffman codes */
  put_bits(w, (uint32_t)(hlit - 257), 5);
  put_bits(w, (uint32_t)(hdist - 1), 5);
  put_bits(w, (uint32_t)(hclen - 4), 4);
  for (int i = 0; i < hclen; i++) put_bits(w, cl_len[CL_ORDER[i]], 3);
  for (int i = 0; i < ncl; i++) {
    int s = cl_sym[i];
    put_bits(w, cl_code[s], cl_len[s]);
    if (s == 16) put_bits(w, cl_extra[i], 2);
    else if (s == 17) put_bits(w, cl_extra[i], 3);
    else if (s == 18) put_bits(w, cl_extra[i], 7);
  }
  /* Each token's whole bit string: a literal's code, or a length code, its extra bits and distance code 0. */
  uint32_t tcode[TOKENS + 2];
  uint8_t tlen[TOKENS + 2];
  for (int t = 0; t < 256; t++) { tcode[t] = lit_code[t]; tlen[t] = lit_len[t]; }
  for (int len = 3; len <= 258; len++) {
    int s = len_sym[len], t = 256 + len - 3;
    tcode[t] = lit_code[s] | (uint32_t)len_xval[len] << lit_len[s]; /* then a 0 bit: distance code 0 */
    tlen[t] = (uint8_t)(lit_len[s] + len_xbits[len] + 1);
  }
  tcode[EOB_TOKEN] = lit_code[256]; tlen[EOB_TOKEN] = lit_len[256];
  tcode[PAD_TOKEN] = 0; tlen[PAD_TOKEN] = 0;
  /*
   * Two tokens a step: at most 2 x 21 bits, and fewer than 8 pending, fit the 64-bit accumulator; one unaligned
   * 8-byte store a step, no branch. Joining the pair's codes is off the chain of dependent shifts through
   * `bits` and `n`, which is what bounds this loop: pairs halve it (CT 512: -0.1 ms).
   */
  while (w->n >= 8) { w->out[w->pos++] = (uint8_t)w->bits; w->bits >>= 8; w->n -= 8; }
  uint64_t bits = w->bits;
  unsigned n = (unsigned)w->n;
  uint8_t *o = w->out + w->pos;
  /* The block ends with its end-of-block code, and an even count (a pad of no bits): every step takes a pair.
     The tokenizer leaves the block at least 16 tokens of room (BLOCK_TOKENS - 32 less one step's at most 16). */
  uint16_t *tok = b->tokens;
  int nt = b->ntok;
  tok[nt++] = EOB_TOKEN;
  if (nt & 1) tok[nt++] = PAD_TOKEN;
  for (int i = 0; i < nt; i += 2) {
    uint32_t t0 = tok[i], t1 = tok[i + 1];
    uint64_t code = tcode[t0] | (uint64_t)tcode[t1] << tlen[t0];
    bits |= code << n;
    n += (unsigned)tlen[t0] + tlen[t1];
    memcpy(o, &bits, 8);
    o += n >> 3;
    bits >>= n & ~7u;
    n &= 7;
  }
  w->bits = bits; w->n = (int)n; w->pos = (size_t)(o - w->out);
  b->ntok = 0;
  memset(b->freq, 0, sizeof b->freq);
  memset(b->freq2, 0, sizeof b->freq2);
}

/* ------------------------------------------------------------------------------------------------ */
/* Thread-local scratch                                                                              */

static __thread uint8_t *out_scratch;
static __thread size_t out_cap;
static __thread uint8_t *row_scratch;
static __thread size_t row_cap;
static __thread Block *block_scratch;

static int reserve(uint8_t **p, size_t *cap, size_t need) {
  if (*cap >= need) return 1;
  uint8_t *q = realloc(*p, need);
  if (!q) return 0;
  *p = q; *cap = need;
  return 1;
}

/* The largest output of png_zlib_stream for `n` input bytes: 15 bits a literal, a block header per block. */
static size_t zlib_bound(size_t n) { return 2 * n + (n / BLOCK_TOKENS + 2) * 320 + 16; } /* + 8-byte stores' overrun */

/* Tokens and counts go through locals (toks, nt, freq): a count stored through the block would make the compiler
   reload its token count after every store. */
#define EMIT(tok) do { uint16_t t_ = (uint16_t)(tok); toks[nt++] = t_; freq[t_]++; } while (0)
/* the bytes pending after `last`: one run, or (fewer than 3) literals */
#define FLUSH_RUN() do { if (run >= 3) EMIT(256 + run - 3); else for (int k_ = 0; k_ < run; k_++) EMIT(last); } while (0)
#define HAS_ZERO_BYTE(v) (((v) - 0x0101010101010101ull) & ~(v) & 0x8080808080808080ull)

/* "up" (PNG 9.2 filter type 2) of one row: its filter byte, then each byte less the one above it. */
static void filter_up(uint8_t *restrict f, const uint8_t *restrict cur, const uint8_t *restrict prev, size_t stride) {
  f[0] = 2;
  if (!prev) { memcpy(f + 1, cur, stride); return; }
  for (size_t x = 0; x < stride; x++) f[x + 1] = (uint8_t)(cur[x] - prev[x]);
}

/* Adler-32 (RFC 1950 8.2), reduced at most every 5552 bytes; SSE2 on x86-64, 16 bytes a step. */
#if defined(__SSE2__)
#include <emmintrin.h>
static uint32_t hsum32(__m128i v) {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
  return (uint32_t)_mm_cvtsi128_si32(v);
}
#endif
static void adler_update(uint32_t *pa, uint32_t *pb, const uint8_t *p, size_t n) {
  uint32_t a = *pa, b = *pb;
  while (n > 0) {
    size_t m = n < 5552 ? n : 5552;
    n -= m;
#if defined(__SSE2__)
    size_t pieces = m / 16;
    if (pieces) {
      const __m128i zero = _mm_setzero_si128();
      const __m128i wlo = _mm_setr_epi16(16, 15, 14, 13, 12, 11, 10, 9), whi = _mm_setr_epi16(8, 7, 6, 5, 4, 3, 2, 1);
      __m128i vprev = zero, vs1 = zero, vs2 = zero;
      for (size_t j = 0; j < pieces; j++, p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        vprev = _mm_add_epi32(vprev, vs1);
        vs1 = _mm_add_epi32(vs1, _mm_sad_epu8(x, zero));
        vs2 = _mm_add_epi32(vs2, _mm_madd_epi16(_mm_unpacklo_epi8(x, zero), wlo));
        vs2 = _mm_add_epi32(vs2, _mm_madd_epi16(_mm_unpackhi_epi8(x, zero), whi));
      }
      b += a * 16 * (uint32_t)pieces + 16 * hsum32(vprev) + hsum32(vs2);
      a += hsum32(vs1);
      m -= pieces * 16;
    }
#endif
    while (m--) { a += *p++; b += a; }
    a %= 65521; b %= 65521;
  }
  *pa = a; *pb = b;
}

/*
 * The zlib stream (RFC 1950) of the PNG image data of an 8-bit image, every row filtered with "up" (PNG 9.2),
 * written at `out` (room: zlib_bound). Returns its length, or 0 when scratch memory could not be had.
 */
static size_t png_zlib_stream(const uint8_t *px, uint32_t width, uint32_t height, uint32_t channels, uint8_t *out) {
  size_t stride = (size_t)width * channels, n = stride + 1;
  if (!reserve(&row_scratch, &row_cap, n + 8)) return 0;
  if (!block_scratch && !(block_scratch = calloc(1, sizeof(Block)))) return 0;
  Block *blk = block_scratch;
  blk->ntok = 0;
  memset(blk->freq, 0, sizeof blk->freq);
  memset(blk->freq2, 0, sizeof blk->freq2);
  uint16_t *toks = blk->tokens;
  uint32_t *freq = blk->freq, *freq2 = blk->freq2;
  int nt = 0;
  (void)freq2; /* used by the SSE2 path only */
  Bits w = { out, 0, 0, 0 };
  put_bits(&w, 0x78, 8); put_bits(&w, 0x01, 8); /* CMF: deflate, 32K window; FLG: fastest, check bits */
  uint32_t a = 1, s2 = 0;
  int last = 2, run = 0; /* every row begins with its filter byte, 2: the stream's first token */
  EMIT(2);
  uint8_t *f = row_scratch;
  for (uint32_t y = 0; y < height; y++) {
    const uint8_t *cur = px + y * stride;
    filter_up(f, cur, y ? cur - stride : NULL, stride);
    adler_update(&a, &s2, f, n);
    for (size_t i = y ? 0 : 1; i < n;) {
      if (nt > BLOCK_TOKENS - 32) { blk->ntok = nt; write_block(&w, blk, 0); nt = 0; }
#if defined(__SSE2__)
      if (run == 0 && i > 0 && i + 18 <= n) {
        /*
         * Sixteen bytes at once. A run token needs three repeats of the byte before it: bit k of `starts` says that
         * f[i + k] begins such a run (it and the two after it repeat f[i + k - 1]). One or two repeats are
         * literals either way, so up to the first start every byte is a literal.
         */
        __m128i x = _mm_loadu_si128((const __m128i *)(f + i)), xp = _mm_loadu_si128((const __m128i *)(f + i - 1));
        __m128i x1 = _mm_loadu_si128((const __m128i *)(f + i + 1)), x2 = _mm_loadu_si128((const __m128i *)(f + i + 2));
        unsigned starts = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(x, xp),
          _mm_and_si128(_mm_cmpeq_epi8(x1, x), _mm_cmpeq_epi8(x2, x1))));
        int k = starts ? __builtin_ctz(starts) : 16;
        /* All sixteen stored as tokens; k of them kept (the block has room: see write_block). */
        uint16_t *t = toks + nt;
        _mm_storeu_si128((__m128i *)t, _mm_unpacklo_epi8(x, _mm_setzero_si128()));
        _mm_storeu_si128((__m128i *)(t + 8), _mm_unpackhi_epi8(x, _mm_setzero_si128()));
        nt += k;
        if (k == 16) {
          for (int j = 0; j < 16; j += 2) { freq[f[i + j]]++; freq2[f[i + j + 1]]++; }
          last = f[i + 15];
          i += 16;
          continue;
        }
        int j = 0;
        for (; j + 1 < k; j += 2) { freq[f[i + j]]++; freq2[f[i + j + 1]]++; }
        if (j < k) freq[f[i + j]]++;
        if (k) last = f[i + k - 1];
        i += (size_t)k + 3; /* the run's first three repeats */
        run = 3;
        continue;
      }
      if (run > 0 && run <= 258 - 16 && i + 16 <= n) {
        /* Inside a run (flat background): as many more of the same byte as there are, up to sixteen. */
        __m128i x = _mm_loadu_si128((const __m128i *)(f + i));
        unsigned same = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8((char)last)));
        int k = same == 0xffff ? 16 : __builtin_ctz(~same);
        run += k; i += (size_t)k;
        if (k == 16 || i >= n) continue;
      }
#else
      if (run > 0 && run <= 250 && i + 8 <= n) {
        /* Inside a run (flat background): eight more of the same byte at a time. */
        uint64_t x;
        memcpy(&x, f + i, 8);
        if (x == (uint64_t)last * 0x0101010101010101ull) { run += 8; i += 8; continue; }
      } else if (run == 0 && i + 8 <= n) {
        /* Eight bytes none of which repeats the one before it (the usual case in noise): eight literals. */
        uint64_t x;
        memcpy(&x, f + i, 8);
        uint64_t same = x ^ ((x << 8) | (uint8_t)last);
        if (!HAS_ZERO_BYTE(same)) {
          for (int k = 0; k < 8; k++) EMIT(f[i + k]);
          last = f[i + 7];
          i += 8;
          continue;
        }
      }
#endif
      int v = f[i++];
      if (v == last && run < 258) { run++; continue; }
      FLUSH_RUN();
      if (v == last) { run = 1; continue; } /* a run of 258 ended and the byte goes on: a new run, same byte */
      EMIT(v);
      last = v; run = 0;
    }
  }
  FLUSH_RUN();
  blk->ntok = nt;
  write_block(&w, blk, 1);
  flush_bits(&w);
  uint32_t adler = (s2 << 16) | a;
  out[w.pos++] = (uint8_t)(adler >> 24); out[w.pos++] = (uint8_t)(adler >> 16); out[w.pos++] = (uint8_t)(adler >> 8); out[w.pos++] = (uint8_t)adler;
  return w.pos;
}

/* ------------------------------------------------------------------------------------------------ */
/* PNG file: signature, IHDR, one IDAT, IEND (PNG 5.2-5.6, 11.2)                                     */

static void be32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

/* The whole PNG in thread-local scratch; returns its length (0: out of memory). `*png` points at it. */
/* `depth` 8 or 16 bits per sample; 16-bit samples come big endian (PNG 7.1), and the "up" filter, being bytewise, is
 * the same for them (PNG 9.2): the stream is written as if each pixel were channels * depth / 8 bytes of 8-bit grey. */
static size_t encode_png(const uint8_t *px, uint32_t width, uint32_t height, uint32_t channels, uint32_t depth, uint8_t **png) {
  uint32_t bpp = channels * (depth / 8);
  size_t raw = ((size_t)width * bpp + 1) * height;
  if (!reserve(&out_scratch, &out_cap, zlib_bound(raw) + 64)) return 0;
  uint8_t *o = out_scratch;
  static const uint8_t sig[8] = { 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a };
  memcpy(o, sig, 8);
  be32(o + 8, 13); memcpy(o + 12, "IHDR", 4);
  be32(o + 16, width); be32(o + 20, height);
  o[24] = (uint8_t)depth; o[25] = channels == 1 ? 0 : 2; o[26] = 0; o[27] = 0; o[28] = 0; /* 8 or 16 bits, grey or truecolour */
  be32(o + 29, crc32_update(0, o + 12, 17));
  size_t z = png_zlib_stream(px, width, height, bpp, o + 41);
  if (!z) return 0;
  be32(o + 33, (uint32_t)z); memcpy(o + 37, "IDAT", 4);
  be32(o + 41 + z, crc32_update(0, o + 37, z + 4));
  uint8_t *e = o + 45 + z;
  be32(e, 0); memcpy(e + 4, "IEND", 4); be32(e + 8, 0xae426082u);
  *png = o;
  return 57 + z;
}

static void lookup16(const uint16_t *words, const uint8_t *table, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = table[words[i]];
}

static void lookup8(const uint8_t *words, const uint8_t *table, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = table[words[i]];
}

/*
 * Separable resampling (render/viewport.ts resample, the same arithmetic in the same order, so the same bytes):
 * a horizontal pass over source rows y0 .. y0+rows-1 into floats (products and sums in double, as JavaScript
 * numbers are), then a vertical pass summing in double and rounding half up (Math.round). Weights are the
 * viewport's per output index: the source indices start[o] .. start[o]+count[o]-1 of index[] and weight[].
 * Returns 0 when out of memory.
 */
typedef struct { const int32_t *start, *count, *index; const float *weight; } Axis;

/* The passes' scratch, kept per thread (a fresh 0.5 MB block per image would be mapped and faulted in each time). */
static __thread uint8_t *rs_scratch;
static __thread size_t rs_cap;

static int resample(const uint8_t *src, uint32_t width, uint32_t c, Axis wx, Axis wy, uint32_t y0, uint32_t rows,
                    uint8_t *out, uint32_t out_w, uint32_t out_h) {
  size_t row_len = (size_t)out_w * c;
  size_t tmp_bytes = (row_len * rows * sizeof(float) + 7) & ~(size_t)7;
  if (!reserve(&rs_scratch, &rs_cap, tmp_bytes + row_len * sizeof(double))) return 0;
  float *tmp = (float *)rs_scratch;
  double *acc = (double *)(rs_scratch + tmp_bytes);
  for (uint32_t r = 0; r < rows; r++) {
    const uint8_t *s = src + (size_t)(y0 + r) * width * c;
    float *d = tmp + (size_t)r * row_len;
    for (uint32_t o = 0; o < out_w; o++) {
      const int32_t *ix = wx.index + wx.start[o];
      const float *wt = wx.weight + wx.start[o];
      int32_t n = wx.count[o];
      for (uint32_t ch = 0; ch < c; ch++) {
        double acc = 0;
        for (int32_t k = 0; k < n; k++) acc += (double)s[(size_t)ix[k] * c + ch] * (double)wt[k];
        d[(size_t)o * c + ch] = (float)acc;
      }
    }
  }
  /* vertical: a row of double sums, each element summed over k in the same order as the JavaScript */
  for (uint32_t o = 0; o < out_h; o++) {
    const int32_t *iy = wy.index + wy.start[o];
    const float *wt = wy.weight + wy.start[o];
    int32_t n = wy.count[o];
    for (size_t i = 0; i < row_len; i++) acc[i] = 0;
    for (int32_t k = 0; k < n; k++) {
      const float *t = tmp + (size_t)(iy[k] - (int32_t)y0) * row_len;
      double wk = (double)wt[k];
      for (size_t i = 0; i < row_len; i++) acc[i] += (double)t[i] * wk;
    }
    uint8_t *d = out + (size_t)o * row_len;
    for (size_t i = 0; i < row_len; i++) {
      double v = floor(acc[i] + 0.5);
      d[i] = v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
    }
  }
  if (rs_cap > (size_t)16 << 20) { free(rs_scratch); rs_scratch = NULL; rs_cap = 0; } /* a big image's room: not kept */
  return 1;
}

#ifdef FASTPNG_STANDALONE
/*
 * A timing harness without Node (the encoder figures in the README): cc -O3 -DFASTPNG_STANDALONE fastpng.c, then
 * `TIMES=201 ./a.out image.gray 512 512 [channels] > image.png` encodes a raw 8-bit file, prints the median time.
 */
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
  if (argc < 4) return 2;
  init_tables();
  uint32_t w = (uint32_t)atoi(argv[2]), h = (uint32_t)atoi(argv[3]), c = argc > 4 ? (uint32_t)atoi(argv[4]) : 1;
  uint8_t *px = malloc((size_t)w * h * c);
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(px, 1, (size_t)w * h * c, f) != (size_t)w * h * c) return 3;
  uint8_t *png = NULL;
  size_t n = 0;
  if (getenv("TIMES")) {
    int reps = atoi(getenv("TIMES"));
    double t[201];
    for (int r = 0; r < reps && r < 201; r++) {
      struct timespec a, b;
      clock_gettime(CLOCK_MONOTONIC, &a);
      n = encode_png(px, w, h, c, 8, &png);
      clock_gettime(CLOCK_MONOTONIC, &b);
      t[r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    for (int i = 0; i < reps; i++) for (int j = i + 1; j < reps; j++) if (t[j] < t[i]) { double x = t[i]; t[i] = t[j]; t[j] = x; }
    fprintf(stderr, "median %.3f ms, %zu bytes\n", t[reps / 2], n);
  }
  n = encode_png(px, w, h, c, 8, &png);
  fwrite(png, 1, n, stdout);
  return n ? 0 : 1;
}
#else
/* ------------------------------------------------------------------------------------------------ */
/* Node-API                                                                                          */

#include <node_api.h>
#include <pthread.h>

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, "FASTPNG", msg);
  return NULL;
}

static int typed(napi_env env, napi_value v, napi_typedarray_type *type, void **data, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_value ab; size_t off;
  return napi_get_typedarray_info(env, v, type, length, data, &ab, &off) == napi_ok;
}

static int u32arg(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* encodePng(data: Uint8Array, width, height, channels: 1 | 3, depth?: 8 | 16): Buffer; 16-bit samples big endian */
static napi_value js_encode_png(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return fail(env, "encodePng(data, width, height, channels[, depth])");
  napi_typedarray_type type; void *data; size_t length; uint32_t w, h, c, d = 8;
  if (!typed(env, argv[0], &type, &data, &length) || (type != napi_uint8_array && type != napi_uint8_clamped_array)) return fail(env, "data must be a Uint8Array");
  if (!u32arg(env, argv[1], &w) || !u32arg(env, argv[2], &h) || !u32arg(env, argv[3], &c)) return fail(env, "width, height and channels must be integers");
  if (argc >= 5 && !u32arg(env, argv[4], &d)) return fail(env, "depth must be 8 or 16");
  if (w == 0 || h == 0 || (c != 1 && c != 3) || (d != 8 && d != 16)) return fail(env, "bad image shape");
  uint64_t bpp = (uint64_t)c * (d / 8);
  if ((uint64_t)w * bpp > 0x7fffffffu || (uint64_t)w * h * bpp != length) return fail(env, "data size does not match the image shape");
  uint8_t *png;
  size_t n = encode_png(data, w, h, c, d, &png);
  if (!n) return fail(env, "out of memory");
  napi_value result; void *copy;
  if (napi_create_buffer_copy(env, n, png, &copy, &result) != napi_ok) return fail(env, "out of memory");
  if (out_cap > (size_t)16 << 20) { free(out_scratch); out_scratch = NULL; out_cap = 0; } /* a big image's room: not kept */
  return result;
}

/* lookup(words: 8- or 16-bit integer array, table: Uint8Array, out: Uint8Array, count): out[i] = table[words[i]] */
static napi_value js_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return fail(env, "lookup(words, table, out, count)");
  napi_typedarray_type wt, tt, ot; void *words, *table, *out; size_t wn, tn, on; uint32_t count;
  if (!typed(env, argv[0], &wt, &words, &wn) || !typed(env, argv[1], &tt, &table, &tn) || !typed(env, argv[2], &ot, &out, &on) || !u32arg(env, argv[3], &count))
    return fail(env, "lookup(words, table, out, count)");
  if (tt != napi_uint8_array || ot != napi_uint8_array) return fail(env, "table and out must be Uint8Arrays");
  if (count > wn || count > on) return fail(env, "count exceeds an array");
  if (wt == napi_uint16_array || wt == napi_int16_array) { /* the bit pattern indexes the table */
    if (tn < 65536) return fail(env, "a 16-bit lookup needs a 65536-entry table");
    lookup16(words, table, out, count);
  } else if (wt == napi_uint8_array || wt == napi_int8_array || wt == napi_uint8_clamped_array) {
    if (tn < 256) return fail(env, "an 8-bit lookup needs a 256-entry table");
    lookup8(words, table, out, count);
  } else return fail(env, "words must be a Uint8Array or Uint16Array");
  return NULL;
}

/* The weights of one axis ({ start, count, index, weight } of render/viewport.ts) with every index inside [lo, hi). */
static int axis_arg(napi_env env, napi_value v, uint32_t n_out, int32_t lo, int32_t hi, Axis *a) {
  const char *names[4] = { "start", "count", "index", "weight" };
  void *data[4]; size_t len[4];
  for (int i = 0; i < 4; i++) {
    napi_value f; napi_typedarray_type t;
    if (napi_get_named_property(env, v, names[i], &f) != napi_ok || !typed(env, f, &t, &data[i], &len[i])) return 0;
    if (t != (i == 3 ? napi_float32_array : napi_int32_array)) return 0;
  }
  if (len[0] < n_out || len[1] < n_out || len[2] != len[3]) return 0;
  a->start = data[0]; a->count = data[1]; a->index = data[2]; a->weight = data[3];
  for (uint32_t o = 0; o < n_out; o++) {
    if (a->start[o] < 0 || a->count[o] < 0 || (size_t)a->start[o] + (size_t)a->count[o] > len[2]) return 0;
  }
  for (size_t k = 0; k < len[2]; k++) if (a->index[k] < lo || a->index[k] >= hi) return 0;
  return 1;
}

/* resample(data, width, height, channels, wx, wy, y0, rows, out, outWidth, outHeight): see resample() above */
static napi_value js_resample(napi_env env, napi_callback_info info) {
  size_t argc = 11; napi_value argv[11];
  const char *usage = "resample(data, width, height, channels, wx, wy, y0, rows, out, outWidth, outHeight)";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 11) return fail(env, usage);
  napi_typedarray_type st, ot; void *src, *out; size_t sn, on;
  uint32_t w, h, c, y0, rows, ow, oh;
  if (!typed(env, argv[0], &st, &src, &sn) || !typed(env, argv[8], &ot, &out, &on) || !u32arg(env, argv[1], &w) || !u32arg(env, argv[2], &h)
      || !u32arg(env, argv[3], &c) || !u32arg(env, argv[6], &y0) || !u32arg(env, argv[7], &rows) || !u32arg(env, argv[9], &ow) || !u32arg(env, argv[10], &oh))
    return fail(env, usage);
  if ((st != napi_uint8_array && st != napi_uint8_clamped_array) || ot != napi_uint8_array) return fail(env, "data and out must be Uint8Arrays");
  if ((c != 1 && c != 3) || w == 0 || h == 0 || ow == 0 || oh == 0 || w > 0x7fffffffu / 3 || ow > 0x7fffffffu / 3) return fail(env, "bad image shape");
  if ((uint64_t)w * h * c > sn || (uint64_t)ow * oh * c > on) return fail(env, "an array is smaller than its image");
  if (rows == 0 || (uint64_t)y0 + rows > h) return fail(env, "source rows outside the image");
  Axis wx, wy;
  if (!axis_arg(env, argv[4], ow, 0, (int32_t)w, &wx) || !axis_arg(env, argv[5], oh, (int32_t)y0, (int32_t)(y0 + rows), &wy))
    return fail(env, "weights do not fit the images");
  if (!resample(src, w, c, wx, wy, y0, rows, out, ow, oh)) return fail(env, "out of memory");
  return NULL;
}

/* A thread's scratch goes with its Node environment (a render worker that piscina ends, say). */
static void free_scratch(void *arg) {
  (void)arg;
  free(out_scratch); out_scratch = NULL; out_cap = 0;
  free(row_scratch); row_scratch = NULL; row_cap = 0;
  free(block_scratch); block_scratch = NULL;
  free(rs_scratch); rs_scratch = NULL; rs_cap = 0;
}

static napi_value init(napi_env env, napi_value exports) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_tables); /* shared constants, made by the first thread to load the addon */
  napi_add_env_cleanup_hook(env, free_scratch, NULL);
  napi_property_descriptor props[] = {
    { "encodePng", NULL, js_encode_png, NULL, NULL, NULL, napi_enumerable, NULL },
    { "lookup", NULL, js_lookup, NULL, NULL, NULL, napi_enumerable, NULL },
    { "resample", NULL, js_resample, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
#endif
