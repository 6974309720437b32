/** Vitest setup file (vitest.config.ts setupFiles): after each test file, its registered temp folders go. */
import { afterAll } from "vitest";
import { removeRegistered } from "./temp-dirs.ts";

afterAll(removeRegistered);
