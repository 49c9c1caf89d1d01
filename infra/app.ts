import { buildApp } from './build-app.ts';

// The CDK CLI runs this file and synthesizes the app when the process exits (App autoSynth).
buildApp();
