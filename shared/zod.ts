/**
 * We use zod's "mini" build: the classic build drags every locale into each Lambda bundle (~440 KB minified),
 * mini tree-shakes to what we use. Import `* as z from 'zod/mini'` where needed (re-exporting the namespace
 * would defeat tree-shaking); importing this module once sets English messages.
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());
