/*
 * text_lexicon.c -- a lexicon baseline for the emotion of a transcript (English and German),
 * over the shared labels of `mer analyze` (neutral, angry, happy, sad, worried, surprise).
 *
 * This is deliberately simple and transparent, not a language model: MER2024's text baseline
 * is a fine-tuned LLM (Baichuan) whose weights do not ship here. Each class has a short
 * hand-written list of common cue words per language (written for this project); a word votes
 * for its class, a negation shortly before it moves the vote to the negated row, and the votes
 * are smoothed into a distribution. docs/analyze.md ("Text") states the rules and limits.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

enum { NEU = 0, ANG, HAP, SAD, WOR, SUR };

/* Entries ending in '*' match as prefixes (German inflection: traurig, traurige, trauriger).
 * Words that mean something else in the other language or are mostly fillers are left out
 * (die, bad, gift, mist, also, einfach, schon, really). */
static const char *const words_neutral[] = {
    /* en */
    "okay", "ok", "fine", "alright", "normal", "normally", "usual", "usually", "ordinary",
    "regular", "routine", "average", "neutral", "calm", "calmly", "fair", "standard", "typical",
    "plain", "moderate", "steady", "indifferent", "whatever", "meh", "so-so", "reasonable",
    "acceptable", "adequate", "everyday", "unremarkable", "noted", "understood", "stable",
    "balanced", "relaxed",
    /* de */
    "ordnung", "gewöhnlich*", "üblich*", "alltäglich*", "ruhig*", "gelassen*", "sachlich*",
    "egal", "durchschnittlich*", "regulär*", "gleichgültig*", "mittelmäßig*", "ausgeglichen*",
    "entspannt*", "stabil*", "verstanden", "passt", "einverstanden", "akzeptabel*", "geht's",
    "normalerweise", "ruhe", "naja", "mäßig*", "unauffällig*", "unverändert*", "nüchtern*",
    "objektiv*", "alltag", "gewohnt*", "kenntnis",
    NULL};

static const char *const words_angry[] = {
    /* en */
    "angry", "angrier", "angrily", "anger", "angered", "mad", "furious", "fury", "rage",
    "raging", "enraged", "annoyed", "annoying", "annoyance", "irritated", "irritating",
    "irritation", "outraged", "outrage", "hate", "hated", "hateful", "hates", "hating", "livid",
    "infuriating", "infuriated", "resent", "resentment", "hostile", "hostility", "disgusting",
    "disgusted", "disgust", "pissed", "frustrated", "frustrating", "frustration", "damn",
    "stupid", "idiot", "ridiculous", "unacceptable", "bitter", "fed",
    /* de */
    "wütend*", "wut", "zorn", "zornig*", "ärger", "ärgerlich*", "verärgert*", "ärgert",
    "ärgere", "sauer", "stinksauer", "empört*", "empörung", "hass", "hasse", "hassen", "hasst",
    "genervt", "nervig*", "nervt", "aggressiv*", "rasend*", "unverschämt*", "frechheit",
    "ekelhaft*", "ekel", "ekelt", "widerlich*", "abscheulich*", "verdammt*", "scheiße",
    "scheisse", "blöd*", "dumm*", "idiot*", "unerträglich*", "gereizt*", "zumutung",
    NULL};

static const char *const words_happy[] = {
    /* en */
    "happy", "happier", "happiest", "happiness", "happily", "glad", "joy", "joyful",
    "delighted", "delight", "pleased", "cheerful", "excited", "exciting", "excitement",
    "thrilled", "wonderful", "great", "fantastic", "amazing", "awesome", "excellent", "love",
    "loved", "lovely", "loving", "enjoy", "enjoyed", "enjoying", "fun", "funny", "laugh",
    "laughing", "smile", "smiling", "celebrate", "celebration", "grateful", "thankful",
    "thanks", "proud", "hooray", "yay", "beautiful", "perfect", "brilliant", "nice", "good",
    /* de */
    "glücklich*", "glück", "froh*", "fröhlich*", "freude", "freue", "freuen", "freut",
    "erfreut", "begeistert*", "toll", "tolle", "toller", "tolles", "super", "wunderbar*",
    "wundervoll*", "großartig*", "herrlich*", "schön*", "prima", "klasse", "spitze", "genial*",
    "liebe", "lieben", "liebt", "liebling", "lachen", "lacht", "lache", "lächeln", "lächelt",
    "spaß", "stolz*", "dankbar*", "danke", "perfekt*", "fantastisch*", "gut", "besser", "beste",
    "besten", "bester", "bestes", "juhu", "hurra", "vergnügt*", "heiter*", "zufrieden*",
    NULL};

static const char *const words_sad[] = {
    /* en */
    "sad", "sadder", "saddest", "sadly", "sadness", "unhappy", "miserable", "depressed",
    "depressing", "depression", "cry", "crying", "cried", "tears", "tearful", "grief",
    "grieve", "grieving", "mourn", "mourning", "sorrow", "sorry", "heartbroken", "lonely",
    "loneliness", "alone", "hopeless", "despair", "gloomy", "regret", "lost", "loss", "miss",
    "missed", "hurt", "hurts", "pain", "painful", "disappointed", "disappointing",
    "disappointment", "devastated", "unfortunately", "died", "dead", "death", "funeral",
    "tragic",
    /* de */
    "traurig*", "trauer", "trauern", "trauert", "unglücklich*", "weinen", "weine", "weint",
    "weinte", "tränen", "schmerz*", "leid", "leider", "einsam*", "allein", "hoffnungslos*",
    "verzweifelt*", "verzweiflung", "deprimiert*", "depressiv*", "bedrückt*",
    "niedergeschlagen*", "enttäuscht*", "enttäuschung", "vermisse", "vermissen", "vermisst",
    "verloren", "verlust", "tot", "tod", "gestorben", "beerdigung", "kummer", "schade",
    "elend*", "betrübt*", "tragisch*", "bedauer*",
    NULL};

static const char *const words_worried[] = {
    /* en */
    "worried", "worry", "worries", "worrying", "afraid", "scared", "scary", "fear", "feared",
    "fearful", "frightened", "frightening", "terrified", "terrifying", "terror", "anxious",
    "anxiety", "nervous", "nervously", "panic", "panicked", "panicking", "uneasy", "tense",
    "stress", "stressed", "stressful", "concerned", "concern", "dread", "dreading", "horror",
    "horrified", "threat", "threatened", "danger", "dangerous", "unsafe", "insecure",
    "uncertain", "doubt", "trouble", "troubled",
    /* de */
    "angst", "ängstlich*", "ängste", "sorge", "sorgen", "besorgt*", "beunruhigt*",
    "beunruhigend*", "nervös*", "panik", "panisch*", "fürchte", "fürchten", "furcht",
    "befürchte*", "erschrocken*", "erschreck*", "schreck", "verängstigt*", "unsicher*",
    "gefahr", "gefährlich*", "bedroht*", "bedrohung", "unheimlich*", "gruselig*", "zittere",
    "zittern", "unruhig*", "gestresst*", "angespannt*", "bange", "hilfe",
    NULL};

static const char *const words_surprise[] = {
    /* en */
    "surprise", "surprised", "surprising", "surprisingly", "amazed", "astonished",
    "astonishing", "shocked", "shocking", "shock", "stunned", "unexpected", "unexpectedly",
    "suddenly", "sudden", "wow", "whoa", "oh", "incredible", "unbelievable", "unbelievably",
    "startled", "speechless", "omg", "gosh", "astounded", "astounding", "dumbfounded",
    "astonishment", "amazement", "unforeseen", "jaw-dropping", "bewildered", "flabbergasted",
    "huh",
    /* de */
    "überrascht*", "überraschung*", "überraschend*", "erstaunt*", "erstaunlich*",
    "verblüfft*", "verblüffend*", "unerwartet*", "plötzlich*", "ach", "krass", "unglaublich*",
    "schockiert*", "schock", "fassungslos*", "sprachlos*", "hoppla", "nanu", "wahnsinn",
    "donnerwetter", "staune", "staunen", "überrumpelt*", "baff", "perplex*", "verwundert*",
    "erstaunen", "unfassbar*", "unvorhergesehen*", "oha", "hui",
    NULL};

static const char *const *const lists[MER_SHARED_CLASSES] = {
    words_neutral, words_angry, words_happy, words_sad, words_worried, words_surprise};

/* Where a negated cue's vote goes: "not happy" is sad; "not sad" / "no worries" reassure
 * (half neutral, half happy); "not angry" / "not surprised" are neutral; "not okay" / "nicht
 * normal" lean sad and worried. */
static const float negated_row[MER_SHARED_CLASSES][MER_SHARED_CLASSES] = {
    [NEU] = {0, 0, 0, 0.5f, 0.5f, 0},
    [ANG] = {1, 0, 0, 0, 0, 0},
    [HAP] = {0, 0, 0, 1, 0, 0},
    [SAD] = {0.5f, 0, 0.5f, 0, 0, 0},
    [WOR] = {0.5f, 0, 0.5f, 0, 0, 0},
    [SUR] = {1, 0, 0, 0, 0, 0},
};

#define NEG_SCOPE 3      /* words after a negation that it reaches */
#define SMOOTH 0.5f      /* additive smoothing per class */
#define WORD_MAX 64

static int entry_match(const char *entry, const char *word) {
    size_t n = strlen(entry);
    if (n && entry[n - 1] == '*') return !strncmp(entry, word, n - 1);
    return !strcmp(entry, word);
}

int32_t mer_text_lexicon_lookup(const char *word) {
    if (!word || !*word) return -1;
    /* exact entries first, so a longer exact word is not claimed by another class's stem */
    for (int32_t c = 0; c < MER_SHARED_CLASSES; c++)
        for (const char *const *e = lists[c]; *e; e++)
            if (!strcmp(*e, word)) return c;
    for (int32_t c = 0; c < MER_SHARED_CLASSES; c++)
        for (const char *const *e = lists[c]; *e; e++)
            if (entry_match(*e, word)) return c;
    return -1;
}

static int is_negation(const char *w) {
    static const char *const neg[] = {"not", "no", "never", "cannot", "nicht", "nie", "niemals",
                                      "kein*", NULL};
    for (const char *const *e = neg; *e; e++)
        if (entry_match(*e, w)) return 1;
    size_t n = strlen(w);
    return n > 3 && !strcmp(w + n - 3, "n't"); /* don't, isn't, can't, wasn't */
}

static int is_clause_word(const char *w) {
    return !strcmp(w, "but") || !strcmp(w, "aber") || !strcmp(w, "sondern");
}

/* Reads the next word of s at *pos into w (lower-cased, UTF-8 kept; ’ becomes '), or a clause
 * break (returns 2), or the end (0). Word characters: ASCII letters, digits, apostrophes,
 * hyphens inside a word, and UTF-8 letters (lead bytes >= 0xC3; U+0080..U+00BF and the
 * U+2000 punctuation block are separators). */
static int next_token(const unsigned char *s, size_t *pos, char *w) {
    size_t i = *pos, n = 0;
    int brk = 0;
again:
    for (;;) { /* skip separators, noting clause punctuation */
        unsigned char c = s[i];
        if (!c) {
            *pos = i;
            return brk ? 2 : 0;
        }
        if (c == 0xE2) { /* U+2000..U+2FFF: punctuation (quotes, dashes, ellipsis), symbols */
            i++;
            for (int k = 0; k < 2 && s[i] >= 0x80 && s[i] <= 0xBF; k++) i++;
            continue;
        }
        if (isalnum(c) || c >= 0xC3) break;
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?') brk = 1;
        /* a 2-byte symbol U+0080..U+00BF (C2 xx) or a stray byte */
        i += (c == 0xC2 && s[i + 1] >= 0x80 && s[i + 1] <= 0xBF) ? 2 : 1;
    }
    if (brk) {
        *pos = i;
        return 2;
    }
    size_t start = i;
    while (s[i]) {
        unsigned char c = s[i];
        if (isalnum(c)) {
            if (n < WORD_MAX - 1) w[n++] = (char)tolower(c);
            i++;
        } else if ((c == '\'' || c == '-') && n && isalnum(s[i + 1])) {
            if (n < WORD_MAX - 1) w[n++] = (char)c;
            i++;
        } else if (c == 0xE2 && s[i + 1] == 0x80 && s[i + 2] == 0x99 && n && isalnum(s[i + 3])) {
            if (n < WORD_MAX - 1) w[n++] = '\''; /* ’ inside a word: don’t */
            i += 3;
        } else if (c == 0xC3 && s[i + 1] >= 0x80 && s[i + 1] <= 0xBF) {
            unsigned char d = s[i + 1];
            if (d <= 0x9E && d != 0x97) d += 0x20; /* À..Þ -> à..þ (not ×) */
            if (n < WORD_MAX - 2) {
                w[n++] = (char)0xC3;
                w[n++] = (char)d;
            }
            i += 2;
        } else if (c >= 0xC4 && c != 0xE2 && c <= 0xF4) {
            /* other non-ASCII letters: copied as they are (no case folding) */
            size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2, k = 1;
            while (k < len && s[i + k] >= 0x80 && s[i + k] <= 0xBF) k++;
            for (size_t q = 0; q < k; q++)
                if (n < WORD_MAX - 1) w[n++] = (char)s[i + q];
            i += k;
        } else {
            break;
        }
    }
    if (i == start) { /* an invalid byte that starts no word: drop it */
        i++;
        goto again;
    }
    w[n] = '\0';
    *pos = i;
    return 1;
}

mer_status mer_text_lexicon_score(const char *text, mer_text_scores *out) {
    if (!text || !out) return mer__err(MER_ERR_INVALID_ARG, "text lexicon: NULL argument");
    memset(out, 0, sizeof *out);
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0;
    char w[WORD_MAX];
    int neg_left = 0;
    int t;
    while ((t = next_token(s, &pos, w))) {
        if (t == 2) {
            neg_left = 0;
            continue;
        }
        out->words++;
        if (is_clause_word(w)) {
            neg_left = 0;
            continue;
        }
        if (is_negation(w)) {
            neg_left = NEG_SCOPE;
            continue;
        }
        int32_t c = mer_text_lexicon_lookup(w);
        if (c >= 0) {
            out->cues++;
            if (neg_left > 0) {
                out->negated++;
                for (int k = 0; k < MER_SHARED_CLASSES; k++) out->votes[k] += negated_row[c][k];
            } else {
                out->votes[c] += 1.0f;
            }
        }
        if (neg_left > 0) neg_left--;
    }
    for (int k = 0; k < MER_SHARED_CLASSES; k++)
        out->probs[k] = (out->votes[k] + SMOOTH) / ((float)out->cues + SMOOTH * MER_SHARED_CLASSES);
    return MER_OK;
}
